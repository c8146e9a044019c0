"""The PyTorch backend as the registry holds it: `.safetensors` checkpoints, run by backends/pytorch.py.

That module imports torch, and the registry is loaded on the torch-free deploy path, so this entry imports it (and
the recipes that rebuild a generator) only inside the methods that build one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from translate.backends.base import Backend
from translate.errors import ModelError

if TYPE_CHECKING:
    from translate.backends.pytorch import TorchSampler, TorchTranslator


class PyTorchBackend(Backend):
    """Checkpoints on PyTorch (CPU, CUDA or MPS): the generator rebuilt from the checkpoint alone, in eval mode."""

    name = "pytorch"
    title = "PyTorch"
    files: ClassVar[Mapping[str, str]] = {".safetensors": "a PyTorch checkpoint"}

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def suits(self, device: str) -> bool:
        return True  # the one backend for checkpoints, on whatever device torch has

    def kind_of(self, path: Path) -> str:
        from translate.recipes.restore import kind_of_checkpoint  # the header alone: no network is built

        return kind_of_checkpoint(path)

    def translator(self, path: Path, direction: str | None, device: str) -> TorchTranslator:
        from translate.backends.pytorch import TorchTranslator
        from translate.core.engine import resolve_device
        from translate.recipes.restore import kind_of_checkpoint, load_generator

        if kind_of_checkpoint(path) == "generator":
            raise ModelError(
                f"{path}: an image generator, not a translator; use it with `translate sample` / `interpolate`"
            )
        module, description = load_generator(path, direction or "a2b")
        return TorchTranslator(module, resolve_device(device), description)

    def sampler(self, path: Path, device: str) -> TorchSampler:
        from translate.backends.pytorch import TorchSampler
        from translate.core.engine import resolve_device
        from translate.recipes.restore import kind_of_checkpoint, load_generator

        if kind_of_checkpoint(path) != "generator":
            raise ModelError(f"{path}: a translator; use `translate apply` with it")
        module, description = load_generator(path, "generate")
        return TorchSampler(module, resolve_device(device), description)
