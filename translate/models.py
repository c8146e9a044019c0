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

if TYPE_CHECKING:
    import torch


class ModelError(ValueError):
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


def resolve_checkpoint(model: str) -> Path:
    """The checkpoint file that MODEL refers to: a shipped name, a run folder or a checkpoint file."""
    from translate import checkpoint

    shipped = shipped_models()
    if model in shipped:
        return pretrained_dir() / shipped[model]["file"]
    path = Path(model).expanduser()
    if path.is_dir():
        latest = checkpoint.latest_checkpoint(path)
        if latest is None:
            raise ModelError(
                f"{path}: a folder without checkpoints (expected {path / 'checkpoints'}/step_*.safetensors)"
            )
        return latest
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ModelError(f"{path}: not a model file; give a run folder or a .safetensors checkpoint")
        return path
    names = f" or shipped model ({', '.join(shipped)})" if shipped else ""
    raise ModelError(f"{model}: no such run folder, checkpoint file{names}")


class TorchTranslator:
    """A generator from a checkpoint, run by PyTorch in eval mode and without autograd."""

    def __init__(self, module: torch.nn.Module, device: torch.device, channels: int, description: str) -> None:
        self.module, self.device, self.channels = module.eval().to(device), device, channels
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


def load_translator(model: str, direction: str = "a2b", device: str = "auto") -> TorchTranslator:
    """A ready-to-run backend for `translate apply`."""
    from translate.engine import resolve_device

    path = resolve_checkpoint(model)
    module, meta = load_generator(path, direction)
    target = resolve_device(device)
    channels = int(meta["config"]["data"]["channels"])
    return TorchTranslator(module, target, channels, f"{meta['recipe']} {direction}, step {meta['step']}, {target}")


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


def load_sampler(model: str | None = None, device: str = "auto") -> TorchSampler:
    """A ready-to-run image generator for `translate sample` / `interpolate` (default: the shipped MNIST DCGAN)."""
    from translate.engine import resolve_device
    from translate.recipes import get_recipe

    path = resolve_checkpoint(model or DEFAULT_SAMPLER)
    from translate import checkpoint

    spec = get_recipe(checkpoint.read(path).recipe)
    if "generate" not in spec.directions:
        raise ModelError(f"{path}: a {spec.name} model translates images; use `translate apply` with it")
    module, meta = load_generator(path, "generate")
    target = resolve_device(device)
    return TorchSampler(module, target, meta, f"{meta['recipe']}, step {meta['step']}, {target}")
