"""Resolve what `--model` names and load it as a backend for inference.

MODEL may be a run folder (its newest checkpoint is used), a checkpoint or .onnx file, a shipped model's name or an
official CycleGAN/pix2pix generator's name (translate.deploy.official fetches those). Torch is imported only when a
PyTorch backend is actually built.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from translate.description import ModelDescription
from translate.errors import BackendError, CheckpointError, ConfigError, ModelError, UsageError

if TYPE_CHECKING:
    import torch

    from translate.deploy.inference import Translator
    from translate.deploy.sampling import Sampler
    from translate.deploy.tiles import Stats
    from translate.recipes.base import RecipeSpec


DEFAULT_SAMPLER = "mnist-clusters"
EXPORTS = (".onnx", ".xml")  # exported models: ONNX files, and OpenVINO IR (the .xml beside its .bin)
BACKENDS = ("auto", "onnxruntime", "openvino")  # what runs an exported model (`--backend`)


def pretrained_dir() -> Path:
    """The folder of generators shipped with the package (the repository's pretrained/)."""
    return Path(str(resources.files("translate.pretrained")))


def shipped_models() -> dict[str, dict[str, Any]]:
    """name → manifest entry of every shipped model."""
    manifest = pretrained_dir() / "manifest.json"
    if not manifest.is_file():
        return {}
    return {entry["name"]: entry for entry in json.loads(manifest.read_text(encoding="utf-8"))["models"]}


@dataclass(frozen=True)
class NamedModel:
    """A model that `--model NAME` finds by name alone, as `translate models` lists it."""

    name: str
    recipe: str
    source: str  # "shipped" (inside the package) or "official" (downloaded on first use)
    cached: bool  # usable without a download
    description: str


def named_models() -> list[NamedModel]:
    """The shipped models, then the official CycleGAN and pix2pix generators."""
    from translate.deploy import official

    rows = [
        NamedModel(name, entry["recipe"], "shipped", True, _shipped_description(entry))
        for name, entry in shipped_models().items()
    ]
    rows += [NamedModel(name, family, "official", cached, text) for family, name, text, cached in official.describe()]
    return rows


def _shipped_description(entry: dict[str, Any]) -> str:
    onnx = f" (ONNX export: {entry['onnx']})" if entry.get("onnx") else ""
    return entry.get("description", "") + onnx


def resolve_model(model: str) -> Path:
    """The file MODEL names: a path (run folder, .safetensors checkpoint or .onnx export) or, when no such path
    exists, a shipped model (`mnist-dcgan`, or `mnist-dcgan.onnx` for its ONNX export) or an official generator
    (`horse2zebra`, `pix2pix-edges2shoes`: downloaded and converted on first use)."""
    path = Path(model).expanduser()
    if path.is_dir():
        from translate.train import checkpoint  # imports torch: only for run folders

        latest = checkpoint.latest_checkpoint(path)
        if latest is None:
            raise ModelError(
                f"{path}: a folder without checkpoints (expected {path / 'checkpoints'}/step_*.safetensors)"
            )
        return latest
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", *EXPORTS):
            raise ModelError(
                f"{path}: not a model file; give a run folder, a .safetensors checkpoint, an .onnx file or an "
                "OpenVINO .xml file"
            )
        return path
    shipped = shipped_models()
    if model in shipped:
        return pretrained_dir() / shipped[model]["file"]
    exports = {entry["onnx"] for entry in shipped.values() if entry.get("onnx")}
    if model in exports:
        return pretrained_dir() / model
    from translate.deploy import official  # after the paths: the ONNX path need not import the download code

    if model in official.OFFICIAL_MODELS:
        return official.fetch(model)
    close = difflib.get_close_matches(model, [*shipped, *exports, *official.OFFICIAL_MODELS], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ModelError(
        f"{model}: no such run folder or model file, nor a model name{hint}; `translate models` lists the names"
    )


def resolve_checkpoint(model: str) -> Path:
    """Like resolve_model, for what needs the PyTorch weights (export, training)."""
    path = resolve_model(model)
    if path.suffix.lower() in EXPORTS:
        kind = "an ONNX export" if path.suffix.lower() == ".onnx" else "an OpenVINO IR export"
        raise ModelError(f"{path}: {kind}; this needs the .safetensors checkpoint (or run folder) it came from")
    return path


class TorchTranslator:
    """A generator from a checkpoint, run by PyTorch in eval mode and without autograd."""

    def __init__(self, module: torch.nn.Module, device: torch.device, model: ModelDescription) -> None:
        self.module, self.device, self.model = module.eval().to(device), device, model
        self.channels, self.stride, self.direction = model.channels, model.stride, model.direction
        self.description = f"{model.recipe} {model.direction}, {model.origin}, PyTorch on {device}"
        self._tiling: TorchTiling | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()

    def tiling(self) -> TorchTiling:
        """The generator as a backend for tiled translation (translate.deploy.tiles), built on first use."""
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
        import torch
        from torch import nn

        from translate.deploy.tiles import SpatialLayer, receptive_margin

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
        import torch

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
        import functools

        import torch

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
    import torch.nn.functional as F

    return F.batch_norm(x, mean, var, norm.weight, norm.bias, training=False, momentum=0.0, eps=norm.eps)


def load_generator(
    path: Path, direction: str, resolution: int | None = None
) -> tuple[torch.nn.Module, ModelDescription]:
    """Build and load the generator for `direction` from any checkpoint, with no other information; with it, the
    description of what it is (the same one an export writes into its ONNX file). `resolution`: a progressively
    grown generator's output at an earlier resolution than its final one."""
    import torch

    from translate.config import from_dict
    from translate.networks.layers import input_stride
    from translate.recipes import get_recipe
    from translate.train import checkpoint
    from translate.train.ema import ema_name

    ckpt = checkpoint.read(path)  # the metadata's structure is checked there
    try:
        spec = get_recipe(ckpt.recipe)
        _check_direction(path, spec, ckpt.meta, direction)
        config = from_dict(spec.config_class, ckpt.meta["config"], prefix="config.")  # types and size bounds
    except ConfigError as exc:  # the file's fault, not the command line's: name the file
        raise CheckpointError(f"{path}: {exc}") from None
    name = spec.directions[direction]
    # The network the config describes is built on the meta device first, which allocates nothing, and compared
    # with the tensors the file holds: a config that claims more than the file has is refused before any memory
    # is spent on it. Only then is the real network built (its size is then the file's).
    try:
        with torch.device("meta"):
            skeleton = spec.build_generator(config, direction)
    except (TypeError, ValueError) as exc:  # a combination of valid values the network refuses (channels: null)
        raise CheckpointError(f"{path}: its config does not describe a {spec.name} generator ({exc})") from None
    # The generator's moving average, when the run kept one, is what is deployed (translate.train.ema).
    averaged = ema_name(name) in ckpt.meta.get("modules", [])
    name = ema_name(name) if averaged else name
    checkpoint.check_fits(path, name, skeleton)
    module = spec.build_generator(config, direction)
    checkpoint.load_module(path, name, module)
    if resolution is not None:
        _set_resolution(module, spec.name, resolution)
    official = (ckpt.meta.get("info") or {}).get("official")
    model = ModelDescription(
        recipe=spec.name,
        kind=spec.kind,
        direction=direction,
        channels=config.data.channels or 3,
        image_size=resolution or config.data.image_size,
        stride=input_stride(module),
        inputs=spec.generator_inputs(config) if spec.generator_inputs is not None else (),
        source_step=ckpt.step,
        origin=f"official {official} weights" if official else f"step {ckpt.step}{', EMA' if averaged else ''}",
    )
    return module.eval(), model


def _set_resolution(module: torch.nn.Module, recipe: str, resolution: int) -> None:
    """Make a progressively grown generator draw at `resolution` px; any other generator draws at one size only."""
    sizes = getattr(module, "resolutions", None)
    if sizes is None:
        raise UsageError(f"--resolution is for progressively grown generators (progan); a {recipe} model has one size")
    if resolution not in sizes:
        raise UsageError(f"--resolution {resolution}: this model draws at {', '.join(map(str, sizes))} px")
    module.set_resolution(resolution)


def _check_direction(path: Path, spec: RecipeSpec, meta: dict[str, Any], direction: str) -> None:
    """Fail with the fix when the checkpoint has no generator for `direction`."""
    stored = meta.get("modules", list(spec.directions.values()))
    if direction in spec.directions and spec.directions[direction] in stored:
        return
    official = (meta.get("info") or {}).get("official")
    if official and direction == "b2a":  # an official file holds one direction: the other is another model
        from translate.deploy.official import other_way

        raise ModelError(other_way(official, direction))
    if spec.is_generator:
        raise ModelError(f"{path}: a {spec.name} model generates images; use `translate sample` with it")
    if direction in spec.directions:
        have = [d for d, module in spec.directions.items() if module in stored]
        raise ModelError(f"{path}: holds only the {', '.join(have) or 'no'} generator, not {direction}")
    raise ModelError(f"{path}: a {spec.name} model has directions {', '.join(spec.directions)}, not {direction}")


def _recipe_kind(path: Path) -> str:
    from translate.recipes import recipe_of
    from translate.train import checkpoint

    return recipe_of(checkpoint.read(path)).kind


def kind_of(path: Path) -> str:
    """What the model file at `path` holds: "translator" or "generator" (an export's metadata says; no session)."""
    if path.suffix.lower() == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return "generator" if ModelDescription.from_metadata(props, path).is_generator else "translator"
    if path.suffix.lower() == ".xml":  # an OpenVINO IR: its description is in the model's rt_info
        from translate.deploy.openvino_runtime import read_description, read_model

        return "generator" if read_description(read_model(path)[1], path).is_generator else "translator"
    return _recipe_kind(path)


def choose_backend(path: Path, backend: str, device: str) -> str:
    """What runs the model at `path`: "pytorch" for checkpoints; for exports `backend`, where "auto" is OpenVINO
    on an x86 CPU when it is installed, else ONNX Runtime (which also serves CUDA). An IR is OpenVINO's alone."""
    from translate.deploy import openvino_runtime  # torch-free; imports OpenVINO only when asked whether it is here

    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    suffix = path.suffix.lower()
    if suffix not in EXPORTS:
        if backend != "auto":
            raise UsageError(f"{path}: a PyTorch checkpoint; --backend is for exported models (`translate export`)")
        return "pytorch"
    if suffix == ".xml":
        if backend == "onnxruntime":
            raise BackendError(f"{path}: an OpenVINO IR, which ONNX Runtime cannot run; use --backend openvino")
        return "openvino"
    if backend != "auto":
        return backend
    from translate.deploy.runtime import cuda_devices

    cpu = device.lower() == "cpu" or (device.lower() == "auto" and cuda_devices() == 0)
    return "openvino" if cpu and openvino_runtime.is_x86() and openvino_runtime.openvino_installed() else "onnxruntime"


def load_translator(
    model: str, direction: str | None = None, device: str = "auto", backend: str = "auto"
) -> Translator:
    """A ready-to-run backend for `translate apply`: for exports the one `choose_backend` picks, else PyTorch."""
    path = resolve_model(model)
    runner = choose_backend(path, backend, device)
    if runner == "openvino":
        from translate.deploy.openvino_runtime import OpenVinoTranslator

        return OpenVinoTranslator(path, direction, device)
    if runner == "onnxruntime":
        from translate.deploy.runtime import OnnxTranslator

        return OnnxTranslator(path, direction, device)
    from translate.train.engine import resolve_device

    if _recipe_kind(path) == "generator":
        raise ModelError(
            f"{path}: an image generator, not a translator; use it with `translate sample` / `interpolate`"
        )
    module, description = load_generator(path, direction or "a2b")
    return TorchTranslator(module, resolve_device(device), description)


class TorchSampler:
    """An image generator from a checkpoint, run by PyTorch in eval mode (batch norm uses running statistics).

    Feeds are named like the generator's inputs (`model.inputs`), which are its forward's keyword arguments.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device, model: ModelDescription) -> None:
        self.module, self.device, self.model = module.eval().to(device), device, model
        self.description = f"{model.recipe}, {model.origin}, PyTorch on {device}"

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = {name: torch.from_numpy(value).to(self.device) for name, value in feeds.items()}
            return self.module(**inputs).float().cpu().numpy()

    def embed(self, labels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module.embed(torch.from_numpy(labels).to(self.device)).float().cpu().numpy()

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = {name: torch.from_numpy(value).to(self.device) for name, value in feeds.items()}
            e = torch.from_numpy(embedding).to(self.device)
            return self.module(**inputs, embedding=e).float().cpu().numpy()


def load_sampler(model: str | None = None, device: str = "auto", backend: str = "auto") -> Sampler:
    """A ready-to-run image generator for `translate sample` / `interpolate` (default: the shipped mnist-clusters);
    exports run on the backend `choose_backend` picks."""
    path = resolve_model(model or DEFAULT_SAMPLER)
    runner = choose_backend(path, backend, device)
    if runner == "openvino":
        from translate.deploy.openvino_runtime import OpenVinoSampler

        return OpenVinoSampler(path, device)
    if runner == "onnxruntime":
        from translate.deploy.runtime import OnnxSampler

        return OnnxSampler(path, device)
    from translate.train.engine import resolve_device

    if _recipe_kind(path) != "generator":
        raise ModelError(f"{path}: a translator; use `translate apply` with it")
    module, description = load_generator(path, "generate")
    return TorchSampler(module, resolve_device(device), description)
