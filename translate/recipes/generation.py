"""What the image-generation recipes (dcgan, wgan-gp, cgan) share: config fields, data, generator, previews."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from torch import Tensor

from translate.config import MAX_CHANNELS, MAX_CLASSES, MAX_LATENT, DataConfig, OptimConfig, TrainConfig, check_size
from translate.data.folders import ImageDataset, scan_classes, scan_domain
from translate.description import GeneratorInput
from translate.errors import ConfigError, DataError
from translate.networks.dcgan import DCGANGenerator
from translate.networks.layers import init_weights
from translate.recipes.base import TrainingData
from translate.train.engine import Engine

DIRECTIONS: dict[str, str] = {"generate": "G"}  # the one generator, stored as module "G"
PREVIEW_SAMPLES = 64
# Every generation recipe's "tiny" preset, for tests and smoke runs: a few channels at 32 px, seconds per step.
TINY_PRESET: dict[str, object] = {
    "data.image_size": 32,
    "generator_channels": 8,
    "discriminator_channels": 8,
    "latent_dim": 8,
    "train.batch_size": 4,
}


@dataclass(frozen=True)
class GeneratorConfig:
    # DCGAN's jitter-free input: the shorter side scaled to image_size and centre-cropped; no flips by default
    # (they would mirror digits and text).
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=64, flip=False))
    optim: OptimConfig = field(default_factory=OptimConfig)  # DCGAN: Adam 2e-4, β1 0.5
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=128))  # DCGAN: minibatch 128
    latent_dim: int = 100  # DCGAN: z of 100 dimensions
    generator_channels: int = 64
    discriminator_channels: int = 64
    init_gain: float = 0.02  # DCGAN: weights N(0, 0.02)
    epochs: int = 25  # when train.steps is 0
    class_names: tuple[str, ...] = ()  # filled from the data's sub-folders by class-conditional recipes

    def __post_init__(self) -> None:
        size = self.data.image_size
        if size < 32 or size > 256 or size & (size - 1):
            raise ConfigError(f"image_size must be a power of two from 32 to 256, got {size}")
        # Bounded: a model file's config is built before its generator (translate.config's limits).
        check_size("latent_dim", self.latent_dim, 1, MAX_LATENT)
        check_size("generator_channels", self.generator_channels, 1, MAX_CHANNELS)
        check_size("discriminator_channels", self.discriminator_channels, 1, MAX_CHANNELS)
        if len(self.class_names) > MAX_CLASSES:
            raise ConfigError(f"class_names must hold at most {MAX_CLASSES} classes, got {len(self.class_names)}")
        if self.epochs < 1:
            raise ConfigError("epochs must be >= 1")
        object.__setattr__(self, "class_names", tuple(self.class_names))  # JSON gives a list back


def build_generator(config: GeneratorConfig, direction: str = "generate") -> DCGANGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a generator has only 'generate'")
    return DCGANGenerator(
        config.latent_dim,
        config.data.channels or 3,
        config.data.image_size,
        base_channels=config.generator_channels,
        num_classes=len(config.class_names),
    )


def generator_inputs(config: GeneratorConfig) -> tuple[GeneratorInput, ...]:
    """z ~ N(0, I) of latent_dim, and a class index when the data had class folders (DCGANGenerator's arguments)."""
    z = GeneratorInput("z", "normal", (config.latent_dim,))
    if not config.class_names:
        return (z,)
    return z, GeneratorInput("label", "class", (), config.class_names)


def build_networks(
    config: GeneratorConfig, engine: Engine, discriminator: Callable[[], torch.nn.Module]
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """G and D with DCGAN's N(0, gain) init, on the engine's device; the weights depend on the seed alone and
    the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        G, D = build_generator(config), discriminator()
        for net in (G, D):
            init_weights(net, config.init_gain)
    return engine.prepare(G), engine.prepare(D)


def make_data(
    config: GeneratorConfig,
    data: Path | None,
    *,
    labeled: bool = False,
    domain_a: Path | None = None,
    domain_b: Path | None = None,
    console: Console | None = None,
) -> TrainingData:
    """Every image under `data` (recursively), or one class per sub-folder when `labeled`."""
    if data is None or domain_a is not None or domain_b is not None:
        raise DataError("give one folder of images (DATA); --domain-a/--domain-b are for translation models")
    if labeled:
        images, labels, names = scan_classes(data, config.data.channels, console=console)
    else:
        images, labels, names = scan_domain(data, config.data.channels, console=console), None, []

    def at_size(image_size: int) -> ImageDataset:
        # The same images, labels and flips at another size: the counter picks the same image at every size.
        return ImageDataset(images, labels, image_size=image_size, flip=config.data.flip, seed=config.train.seed)

    kind = "grayscale" if images.channels == 1 else "RGB"
    summary = f"{len(images)} images in {len(names)} classes" if labeled else f"{len(images)} images"
    return TrainingData(
        dataset=at_size(config.data.image_size),
        preview=preview_inputs(config.latent_dim, len(names), config.train.seed),
        summary=f"{summary}, {kind}",
        channels=images.channels,
        class_names=tuple(names),
        at_size=at_size,
    )


def preview_inputs(latent_dim: int, num_classes: int, seed: int) -> dict[str, Tensor]:
    """Fixed latents (and labels: each row one class, cycling) so previews show the same samples over time."""
    generator = torch.Generator().manual_seed(seed + 12345)
    z = torch.randn(PREVIEW_SAMPLES, latent_dim, generator=generator)
    labels = torch.arange(PREVIEW_SAMPLES) // 8 % max(num_classes, 1)
    return {"z": z, "label": labels}


def preview_rows(G: torch.nn.Module, inputs: dict[str, Tensor], conditional: bool) -> list[Tensor]:
    """An 8×8 grid of samples from fixed inputs, in eval mode (batch-norm running statistics)."""
    G.eval()
    try:
        with torch.no_grad():
            images = G(inputs["z"], inputs["label"] if conditional else None)
    finally:
        G.train()
    return list(images.split(8))


class GeneratorRecipe:
    """What a generation recipe exposes besides its train_step: networks G and D, their optimisers, previews."""

    engine: Engine
    G: torch.nn.Module  # a DCGANGenerator, possibly inside the engine's wrappers
    D: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    conditional = False

    def preview(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        return preview_rows(self.engine.unwrap(self.G), inputs, self.conditional)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.engine.unwrap(self.G), "D": self.engine.unwrap(self.D)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def extra_state(self) -> dict[str, Tensor]:
        return {}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        """Nothing beyond networks, optimisers and RNG: the trainer restores those."""
