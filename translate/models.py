"""Resolve what `--model` names and load it as a backend for inference.

MODEL may be a run folder (its newest checkpoint is used) or a checkpoint file. Torch is imported only when a
PyTorch backend is actually built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


class ModelError(ValueError):
    """A model that cannot be found or used; the message names it and the fix."""


def resolve_checkpoint(model: str) -> Path:
    """The checkpoint file that MODEL refers to."""
    from translate import checkpoint

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
    raise ModelError(f"{model}: no such run folder or checkpoint file")


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
