"""The PyTorch backend: a generator from a `.safetensors` checkpoint, run in eval mode without autograd.

Torch is imported by this module, so the deploy path imports it only when a checkpoint is actually run.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from translate.backends.tiles import SpatialLayer, Stats, receptive_margin
from translate.description import ModelDescription
from translate.errors import ModelError


class TorchTranslator:
    """A generator from a checkpoint, run by PyTorch in eval mode and without autograd."""

    def __init__(self, module: torch.nn.Module, device: torch.device, model: ModelDescription) -> None:
        self.module, self.device, self.model = module.eval().to(device), device, model
        self.channels, self.stride, self.direction = model.channels, model.stride, model.direction
        self.description = f"{model.recipe} {model.direction}, {model.origin}, PyTorch on {device}"
        self._tiling: TorchTiling | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()

    def tiling(self) -> TorchTiling:
        """The generator as a backend for tiled translation (translate.backends.tiles), built on first use."""
        if self._tiling is None:
            self._tiling = TorchTiling(self.module, self.device, self.model)
        return self._tiling


class TorchTiling:
    """A generator as a `tiles.TileBackend`: its instance norms' input statistics recorded, or fixed, per call.

    The network is not changed. Statistics are read by forward hooks; a run with given statistics replaces each
    instance norm's `forward` for that call only by batch norm on those statistics (the same (x − mean) /
    sqrt(var + ε) · weight + bias, with the layer's ε and affine parameters). Instance norms with running
    statistics already use fixed ones in eval mode and are left alone, as is batch norm.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device, model: ModelDescription) -> None:
        self.module, self.device = module, device
        pads = (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d)
        # Layers that move pixels in ways receptive_margin does not follow; the generators here have none.
        unsupported = (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle)
        # One forward pass of a small input records the layers in execution order (the U-Net's decoder runs its
        # levels in the reverse of their registration order).
        seen: list[nn.Module] = []
        kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d, *pads, *unsupported)
        hooks = [
            m.register_forward_pre_hook(lambda m, _: seen.append(m)) for m in module.modules() if isinstance(m, kinds)
        ]
        side = max(16, model.stride)  # the smallest input a ResNet's reflection pads and a U-Net's levels take
        try:
            with torch.inference_mode():
                module(torch.zeros(1, model.channels, side, side, device=device))
        finally:
            for hook in hooks:
                hook.remove()
        refused = [type(m).__name__ for m in seen if isinstance(m, unsupported)]
        if refused:
            raise ModelError(f"a {model.recipe} generator with {refused[0]} layers cannot be tiled (try --tile 0)")
        self.norms = [m for m in seen if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]
        rows: list[SpatialLayer] = []
        cols: list[SpatialLayer] = []
        for m in seen:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                kind = "conv" if isinstance(m, nn.Conv2d) else "transposed"
                for axis, layers in enumerate((rows, cols)):
                    layers.append(
                        SpatialLayer(kind, m.kernel_size[axis], m.stride[axis], m.dilation[axis], m.padding[axis])
                    )
            elif isinstance(m, pads):  # padding is (left, right, top, bottom)
                rows.append(SpatialLayer("pad", pad=m.padding[2]))
                cols.append(SpatialLayer("pad", pad=m.padding[0]))
        self.margin = max(receptive_margin(rows), receptive_margin(cols))

    def statistics(self, image: np.ndarray) -> Stats:
        if not self.norms:
            return []
        recorded: Stats = []

        def record(norm: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            var, mean = torch.var_mean(inputs[0].float(), dim=(2, 3), unbiased=False)  # (1, C) each, as the norm's
            recorded.append((mean[0].cpu().numpy(), var[0].cpu().numpy()))

        hooks = [norm.register_forward_pre_hook(record) for norm in self.norms]
        try:
            with torch.inference_mode():
                self.module(torch.from_numpy(image).to(self.device))
        finally:
            for hook in hooks:
                hook.remove()
        return recorded

    def __call__(self, batch: np.ndarray, stats: Stats) -> np.ndarray:
        with torch.inference_mode():
            for norm, (mean, var) in zip(self.norms, stats, strict=True):
                fixed = (torch.from_numpy(mean).to(self.device), torch.from_numpy(var).to(self.device))
                norm.forward = functools.partial(_fixed_norm, norm, *fixed)
            try:
                out = self.module(torch.from_numpy(batch).to(self.device))
            finally:
                for norm in self.norms:
                    del norm.forward  # back to the class's own forward
        return out.float().cpu().numpy()


def _fixed_norm(norm: torch.nn.Module, mean: torch.Tensor, var: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """An instance norm's output with the given per-channel statistics: batch norm in inference mode."""
    return F.batch_norm(x, mean, var, norm.weight, norm.bias, training=False, momentum=0.0, eps=norm.eps)


class TorchSampler:
    """An image generator from a checkpoint, run by PyTorch in eval mode (batch norm uses running statistics).

    Feeds are named like the generator's inputs (`model.inputs`), which are its forward's keyword arguments.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device, model: ModelDescription) -> None:
        self.module, self.device, self.model = module.eval().to(device), device, model
        self.description = f"{model.recipe}, {model.origin}, PyTorch on {device}"

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            inputs = {name: torch.from_numpy(value).to(self.device) for name, value in feeds.items()}
            return self.module(**inputs).float().cpu().numpy()

    def embed(self, labels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module.embed(torch.from_numpy(labels).to(self.device)).float().cpu().numpy()

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = {name: torch.from_numpy(value).to(self.device) for name, value in feeds.items()}
            e = torch.from_numpy(embedding).to(self.device)
            return self.module(**inputs, embedding=e).float().cpu().numpy()
