"""Building blocks shared by the networks: normalisation choice and the papers' weight initialisation."""

from __future__ import annotations

import contextlib
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.checkpoint import checkpoint

Norm = Literal["instance", "batch", "none"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """The normalisation used after a convolution.

    Instance norm without affine parameters or running statistics is CycleGAN's choice (its generators are run
    per image at any size); batch norm is pix2pix's and DCGAN's.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use instance, batch or none")


def uses_bias(kind: Norm) -> bool:
    # A convolution followed by batch norm has its bias cancelled by the mean subtraction; instance norm without
    # affine parameters keeps the conv bias (as the reference CycleGAN generator does).
    return kind != "batch"


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, gain) for conv/linear weights, N(1, gain) for norm scales, zeros for biases (DCGAN, CycleGAN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if not parametrize.is_parametrized(m, "weight") and not isinstance(m.weight, nn.Parameter):
                continue  # a fixed filter (networks/resample.py): neither trained nor initialised
            # A spectrally normalised layer computes `weight` from `original`: initialise the stored tensor.
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def checkpointed(block: nn.Module, x: Tensor) -> Tensor:
    """`block(x)` keeping only `x` for the backward pass, which runs the block again (gradient checkpointing).

    That second run is in training mode too: batch norm would update its running statistics twice per step, and
    the eval-mode network would depend on whether checkpointing was on. The block's buffers are put back after it.
    """
    if torch.compiler.is_compiling():  # a compiled graph's recomputation does not replay buffer updates
        return checkpoint(block, x, use_reentrant=False)
    contexts = (contextlib.nullcontext(), _BuffersKept(block))  # (around the forward, around each recomputation)
    return checkpoint(block, x, use_reentrant=False, context_fn=lambda: contexts)


class _BuffersKept:
    """Puts a module's buffers back as they were on entry; re-enterable, as every backward pass recomputes."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.saved = [(buffer, buffer.clone()) for buffer in self.module.buffers()]

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for buffer, value in self.saved:
                buffer.copy_(value)


@runtime_checkable
class ImageToImage(Protocol):
    """An image-to-image network (the ResNet and U-Net generators): the input's H and W must be multiples of
    `stride` (inference pads and crops around it)."""

    stride: int


def input_stride(network: nn.Module) -> int:
    """The stride an image-to-image network declares; 1 for networks without spatial input (generators)."""
    return int(network.stride) if isinstance(network, ImageToImage) else 1
