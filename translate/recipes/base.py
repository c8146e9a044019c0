"""What every recipe module provides, and the data it hands to the trainer."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from translate.description import GeneratorInput, ModelKind
from translate.errors import ConfigError

# The layout a recipe trains on: unpaired (trainA/ + trainB/, or --domain-a/--domain-b), paired (A|B side-by-side
# files, or A/ + B/ matched by name), images (one folder, recursively) or classes (one sub-folder per class).
DataFamily = Literal["unpaired", "paired", "images", "classes"]


@dataclass
class TrainingData:
    dataset: Dataset  # indexed by a global sample counter (see translate.data.folders)
    preview: dict[str, Tensor]  # fixed held-out inputs for preview grids
    summary: str  # one line for the log, e.g. "1067 A / 1334 B images"
    channels: int  # image channels the data resolved to (1 or 3)
    images: int = 0  # training images, where a setting depends on how many there are (augment: auto)
    class_names: tuple[str, ...] = ()  # class-conditional data: one name per label, in label order
    cluster_shares: tuple[float, ...] = ()  # classes found by clustering: each one's share of the images
    # The same samples at another image size (a phase that trains at it); None: this data has one size.
    at_size: Callable[[int], Dataset] | None = None
    # Translators: held-out (inputs, real images of the output domain), named in the commands a run ends with.
    held_out: tuple[Path, Path] | None = None


@dataclass(frozen=True)
class Phase:
    """A stretch of training at one image size and batch size (progressive growing changes both as it goes).

    Its length is `steps`, or `images`: training images, turned into steps with the phase's global batch
    (batch_size × world size, rounded up; WGAN-GP's extra critic batches are not counted). With neither it is
    open-ended and runs to `train.steps`, which only the last phase may be. `image_size` and `batch_size` of
    None take the config's (`data.image_size`, `train.batch_size`, per process).
    """

    steps: int | None = None
    images: int | None = None
    image_size: int | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and self.images is not None:
            raise ConfigError(
                f"a phase is given in steps or in images, not both (steps={self.steps}, images={self.images})"
            )
        for name in ("steps", "images", "image_size", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"a phase's {name} must be >= 1, got {value}")

    def length(self, batch_size: int, world_size: int = 1) -> int | None:
        """Steps in this phase when the config's batch is `batch_size` per process; None when open-ended."""
        if self.images is None:
            return self.steps
        return -(-self.images // ((self.batch_size or batch_size) * world_size))  # e.g. 10 images at 2 × 2: 3 steps


def single_phase(config: Any) -> tuple[Phase, ...]:
    """What a recipe without phases trains: every step at the config's image size and batch size."""
    return (Phase(),)


def phase_starts(phases: Sequence[Phase], batch_size: int, world_size: int = 1) -> tuple[int, ...]:
    """The first step of each phase, e.g. (0, 3, 8) for 3 steps, then 10 images at batch 2, then the rest."""
    if not phases:
        raise ConfigError("a recipe declares at least one phase")
    starts = [0]
    for phase in phases[:-1]:
        length = phase.length(batch_size, world_size)
        if length is None:
            raise ConfigError("only the last phase may be open-ended: give the others steps or images")
        starts.append(starts[-1] + length)
    return tuple(starts)


def phase_at(step: int, starts: Sequence[int]) -> int:
    """The phase that (0-based) step `step` trains in: a pure function of the step, so resume needs no state."""
    return bisect.bisect_right(starts, step) - 1


class Recipe(Protocol):
    """A training method: its networks, optimisers and a train_step that reads like the paper."""

    name: str
    config: Any
    batches_per_step: int  # data batches one train_step consumes (WGAN-GP's critic takes several)
    # The losses of train_step's metrics by the networks they train, e.g. {"G": ("G", "L1"), "D": ("D",)}: the
    # panels of the run's losses.png.
    loss_groups: ClassVar[dict[str, tuple[str, ...]]]

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]: ...
    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]: ...  # (label, (N, C, H, W)) per row
    def modules(self) -> dict[str, nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def extra_state(self) -> dict[str, Tensor]: ...
    def load_extra_state(self, state: dict[str, Tensor]) -> None: ...


@dataclass(frozen=True)
class RecipeSpec:
    """A registry entry: how to configure, build, feed and deploy one recipe."""

    name: str
    summary: str
    kind: ModelKind  # translator: images → images (apply); generator: named inputs → images (sample, interpolate)
    data: DataFamily
    config_class: type
    build: Callable[..., Recipe]  # (config, engine) -> Recipe
    build_generator: Callable[[Any, str], nn.Module]  # (config, direction) -> uninitialised generator
    directions: dict[str, str]  # direction -> name of the generator module inside the checkpoint
    make_data: Callable[..., TrainingData]
    default_steps: Callable[[Any, TrainingData], int]
    presets: dict[str, dict[str, object]]  # every recipe has "tiny": a few channels at 16–32 px, for tests
    # Generators: their inputs by name, from the config (translators take one `image`).
    generator_inputs: Callable[[Any], tuple[GeneratorInput, ...]] | None = None
    # The phases the trainer runs, from the config (progressive growing: one per resolution); the trainer passes
    # recipes nothing new, so one that depends on the phase computes it from the step (`phase_at`).
    phases: Callable[[Any], tuple[Phase, ...]] = single_phase

    def __post_init__(self) -> None:
        if (self.kind == "generator") != (self.generator_inputs is not None):
            raise ValueError(f"{self.name}: a generator recipe declares generator_inputs, a translator does not")
        if "tiny" not in self.presets:
            raise ValueError(f"{self.name}: every recipe needs a 'tiny' preset (used by the tests)")

    @property
    def is_generator(self) -> bool:
        return self.kind == "generator"

    @property
    def default_direction(self) -> str:
        """The direction used when none is asked for: a2b for translators, generate for generators."""
        return next(iter(self.directions))


def epoch_steps(config: Any, data: TrainingData) -> int:
    """Steps for `config.epochs` passes over the dataset (for unpaired data: over the larger domain)."""
    return max(1, config.epochs * len(data.dataset) // config.train.batch_size)


def linear_decay(lr: float, step: int, total: int, decay_from: float) -> float:
    """Constant `lr` for the first `decay_from` of `total` steps, then linear decay to zero (CycleGAN, section 7.1;
    the pix2pix reference code's schedule). A pure function of the step: nothing to save for resume."""
    decay_start = int(total * decay_from)
    return lr * (1.0 - max(0, step - decay_start) / max(1, total - decay_start))


def set_learning_rate(lr: float, *optimizers: torch.optim.Optimizer) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
