"""The machinery a recipe's train_step uses without knowing about devices: prepare, autocast, optimize."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from translate.config import DeviceError

DeviceName = Literal["auto", "cpu", "cuda", "mps"]


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU; an explicit device that is missing is an error."""
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu (or auto)")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("--device mps: Apple's MPS backend is not available; use --device cpu (or auto)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


class Engine:
    """Holds the device and numeric settings; recipes call its three verbs and nothing device-specific."""

    def __init__(self, device: str | torch.device = "auto") -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move a network to the training device."""
        return module.to(self.device)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward-pass precision context (fp32 here: nothing to switch)."""
        yield

    def optimize(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One update: clear gradients, backpropagate `loss`, step."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        non_blocking = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=non_blocking) for k, v in batch.items()}

    def rng_state(self) -> dict[str, Tensor]:
        """Global RNG states that a resumed run must restore (dropout and other in-graph randomness)."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_rng_state(self, state: dict[str, Tensor]) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)
