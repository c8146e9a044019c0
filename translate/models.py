"""Resolve what `--model` names and load it as a backend for inference.

MODEL may be a run folder (its newest checkpoint is used) or a checkpoint file. Torch is imported only when a
PyTorch backend is actually built.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from translate.errors import TranslateError

if TYPE_CHECKING:
    import torch

    from translate.inference import Translator
    from translate.sampling import Sampler


class ModelError(TranslateError, ValueError):
    """A model that cannot be found or used; the message names it and the fix."""


DEFAULT_SAMPLER = "mnist-dcgan"


def pretrained_dir() -> Path:
    """The folder of generators shipped with the package (the repository's pretrained/)."""
    return Path(str(resources.files("translate.pretrained")))


def shipped_models() -> dict[str, dict[str, Any]]:
    """name → manifest entry of every shipped model."""
    manifest = pretrained_dir() / "manifest.json"
    if not manifest.is_file():
        return {}
    return {entry["name"]: entry for entry in json.loads(manifest.read_text(encoding="utf-8"))["models"]}


def resolve_model(model: str) -> Path:
    """The file MODEL names: a path (run folder, .safetensors checkpoint or .onnx export) or, when no such path
    exists, a shipped model (`mnist-dcgan`, or `mnist-dcgan.onnx` for its ONNX export)."""
    path = Path(model).expanduser()
    if path.is_dir():
        from translate import checkpoint  # imports torch: only for run folders

        latest = checkpoint.latest_checkpoint(path)
        if latest is None:
            raise ModelError(
                f"{path}: a folder without checkpoints (expected {path / 'checkpoints'}/step_*.safetensors)"
            )
        return latest
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", ".onnx"):
            raise ModelError(f"{path}: not a model file; give a run folder, a .safetensors checkpoint or an .onnx file")
        return path
    shipped = shipped_models()
    if model in shipped:
        return pretrained_dir() / shipped[model]["file"]
    exports = {entry["onnx"] for entry in shipped.values() if entry.get("onnx")}
    if model in exports:
        return pretrained_dir() / model
    names = f" or shipped model ({', '.join(sorted([*shipped, *exports]))})" if shipped else ""
    raise ModelError(f"{model}: no such run folder, model file{names}")


def resolve_checkpoint(model: str) -> Path:
    """Like resolve_model, for what needs the PyTorch weights (export, training)."""
    path = resolve_model(model)
    if path.suffix.lower() == ".onnx":
        raise ModelError(f"{path}: an ONNX export; this needs the .safetensors checkpoint (or run folder) it came from")
    return path


class TorchTranslator:
    """A generator from a checkpoint, run by PyTorch in eval mode and without autograd."""

    def __init__(
        self, module: torch.nn.Module, device: torch.device, channels: int, direction: str, description: str
    ) -> None:
        self.module, self.device, self.channels = module.eval().to(device), device, channels
        self.direction = direction
        self.stride = int(getattr(module, "stride", 1))
        self.description = description

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()


def load_generator(path: Path, direction: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build and load the generator for `direction` from any checkpoint, with no other information."""
    from translate import checkpoint
    from translate.config import from_dict
    from translate.recipes import get_recipe

    ckpt = checkpoint.read(path)
    spec = get_recipe(ckpt.recipe)
    if direction not in spec.directions:
        raise ModelError(f"{path}: a {spec.name} model has directions {', '.join(spec.directions)}, not {direction}")
    config = from_dict(spec.config_class, ckpt.meta["config"])
    module = spec.build_generator(config, direction)
    checkpoint.load_module(path, spec.directions[direction], module)
    return module.eval(), ckpt.meta


def load_translator(model: str, direction: str | None = None, device: str = "auto") -> Translator:
    """A ready-to-run backend for `translate apply`: ONNX Runtime for .onnx files, else PyTorch."""
    path = resolve_model(model)
    if path.suffix.lower() == ".onnx":
        from translate.runtime import OnnxTranslator

        return OnnxTranslator(path, direction, device)
    from translate.engine import resolve_device

    direction = direction or "a2b"
    module, meta = load_generator(path, direction)
    target = resolve_device(device)
    channels = int(meta["config"]["data"]["channels"])
    description = f"{meta['recipe']} {direction}, step {meta['step']}, PyTorch on {target}"
    return TorchTranslator(module, target, channels, direction, description)


class TorchSampler:
    """An image generator from a checkpoint, run by PyTorch in eval mode (batch norm uses running statistics)."""

    def __init__(self, module: torch.nn.Module, device: torch.device, meta: dict[str, Any], description: str) -> None:
        config = meta["config"]
        self.module, self.device = module.eval().to(device), device
        self.latent_dim = int(config["latent_dim"])
        self.class_names = list(config.get("class_names") or [])
        self.num_classes = len(self.class_names)
        self.channels = int(config["data"]["channels"])
        self.image_size = int(config["data"]["image_size"])
        self.description = description

    def __call__(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = torch.from_numpy(labels).to(self.device) if labels is not None else None
            return self.module(torch.from_numpy(z).to(self.device), y).float().cpu().numpy()

    def embed(self, labels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module.embed(torch.from_numpy(labels).to(self.device)).float().cpu().numpy()

    def from_embedding(self, z: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            e = torch.from_numpy(embedding).to(self.device)
            return self.module(torch.from_numpy(z).to(self.device), embedding=e).float().cpu().numpy()


def load_sampler(model: str | None = None, device: str = "auto") -> Sampler:
    """A ready-to-run image generator for `translate sample` / `interpolate` (default: the shipped MNIST DCGAN)."""
    path = resolve_model(model or DEFAULT_SAMPLER)
    if path.suffix.lower() == ".onnx":
        from translate.runtime import OnnxSampler

        return OnnxSampler(path, device)
    from translate import checkpoint
    from translate.engine import resolve_device
    from translate.recipes import get_recipe

    spec = get_recipe(checkpoint.read(path).recipe)
    if "generate" not in spec.directions:
        raise ModelError(f"{path}: a {spec.name} model translates images; use `translate apply` with it")
    module, meta = load_generator(path, "generate")
    target = resolve_device(device)
    return TorchSampler(module, target, meta, f"{meta['recipe']}, step {meta['step']}, PyTorch on {target}")
