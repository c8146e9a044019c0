"""An exponential moving average of the generators' weights (Karras et al. 2018, §A.1; 2019, 2020).

G's weights oscillate from step to step under the adversarial game; their running average draws markedly better
samples than any single iterate (Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training").
The average is what previews, `sample`, `interpolate`, `apply`, `export` and `evaluate` use: a checkpoint holds it
beside the raw generator, as `<name>_ema`, and the deploy path prefers it.

The decay is given as a half-life in images, so it means the same at any batch size: after each step of B images,
avg ← β·avg + (1 − β)·G with β = 0.5^(B / half_life). Early in training, when G changes fastest, the half-life is
capped at `rampup` times the images seen so far (StyleGAN2-ADA's ramp-up, 0.05), so the average does not drag along
the random initialisation. Buffers (batch-norm statistics) are copied from the live generators at every step, as
in those works; but the live network's running statistics describe the live weights, not their average, so before
the averages are used (previews, evaluations, checkpoints) their batch-norm statistics are measured anew on samples
they draw (`measure_norms`: SWA's update_bn, Izmailov et al. 2018, for a network fed by its prior).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

SUFFIX = "_ema"
NORM_SAMPLES = 2048  # generated samples on which the averages' batch-norm statistics are measured


def ema_name(name: str) -> str:
    """The checkpoint name of module `name`'s average."""
    return name + SUFFIX


class GeneratorEMA:
    """The averages of the named generator modules (unwrapped, i.e. not DDP), updated after every step."""

    def __init__(self, generators: dict[str, nn.Module], half_life: float, rampup: float | None = 0.05) -> None:
        if half_life <= 0:
            raise ValueError(f"EMA half-life must be positive, got {half_life}")
        self.half_life, self.rampup = half_life, rampup
        self.averages = {name: _frozen_copy(module) for name, module in generators.items()}

    @torch.no_grad()
    def reset(self, generators: dict[str, nn.Module]) -> None:
        """Start the averages at the generators' current weights (a fresh run, or weights from --init)."""
        for name, module in generators.items():
            self.averages[name].load_state_dict(module.state_dict())

    def modules(self) -> dict[str, nn.Module]:
        """What a checkpoint saves and restores: `<name>_ema` → the average."""
        return {ema_name(name): average for name, average in self.averages.items()}

    def beta(self, batch_images: int, images_seen: int) -> float:
        half_life = self.half_life
        if self.rampup is not None:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch_images / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, generators: dict[str, nn.Module], batch_images: int, images_seen: int) -> None:
        """One step: avg ← β·avg + (1 − β)·G; `images_seen` counts this step's images too."""
        beta = self.beta(batch_images, images_seen)
        for name, module in generators.items():
            average = self.averages[name]
            for mine, theirs in zip(average.parameters(), module.parameters(), strict=True):
                mine.lerp_(theirs.detach(), 1.0 - beta)
            for mine, theirs in zip(average.buffers(), module.buffers(), strict=True):
                mine.copy_(theirs)

    @torch.no_grad()
    def measure_norms(self, name: str, draw: Callable[[int], dict[str, Tensor]], batch_size: int) -> None:
        """Replace the batch-norm statistics of average `name` with those of its own activations: NORM_SAMPLES
        samples in batches of `batch_size`, their inputs from `draw(n)` (keyword arguments of its forward), the
        statistics averaged equally over the batches. Nothing else changes; without batch norm this is a no-op."""
        average = self.averages[name]
        norms = [m for m in average.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
        average.train()
        try:
            for start in range(0, NORM_SAMPLES, batch_size):
                average(**draw(min(batch_size, NORM_SAMPLES - start)))
        finally:
            average.eval()
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum

    @contextmanager
    def swapped_in(self, generators: dict[str, nn.Module]) -> Iterator[None]:
        """Within the block the live generators hold the averages (for previews), then their own weights again."""
        saved = {name: copy.deepcopy(module.state_dict()) for name, module in generators.items()}
        try:
            for name, module in generators.items():
                module.load_state_dict(self.averages[name].state_dict())
            yield
        finally:
            for name, module in generators.items():
                module.load_state_dict(saved[name])


def _frozen_copy(module: nn.Module) -> nn.Module:
    average = copy.deepcopy(module)
    average.requires_grad_(False)
    return average.eval()
