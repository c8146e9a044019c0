"""What the image-generation recipes (dcgan, wgan-gp, cgan) share: config fields, data, generator, previews."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
from rich.console import Console
from torch import Tensor

from translate.augment import Augment
from translate.config import MAX_CHANNELS, MAX_CLASSES, MAX_LATENT, DataConfig, OptimConfig, TrainConfig, check_size
from translate.core.engine import Engine
from translate.data.clusters import cluster_images
from translate.data.folders import ImageDataset, scan_classes, scan_domain
from translate.description import GeneratorInput
from translate.errors import ConfigError, DataArgumentError
from translate.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from translate.networks.layers import init_weights
from translate.recipes.base import TrainingData

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
    # DCGAN: minibatch 128. Generator EMA with a half-life of 10k images (StyleGAN's G_smoothing_kimg = 10).
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=128, ema_half_life=10_000))
    latent_dim: int = 100  # DCGAN: z of 100 dimensions
    generator_channels: int = 64  # width of the generator's last layer (doubling towards z)
    discriminator_channels: int = 64  # width of the discriminator's first layer
    init_gain: float = 0.02  # DCGAN: weights N(0, 0.02); 0: PyTorch's default initialisation
    # G's own Adam rate (two time-scale training, Heusel et al. 2017; InfoGAN's 1e-3); 0: optim.lr, D's rate.
    generator_lr: float = 0.0
    epochs: int = 25  # when train.steps is 0
    class_names: tuple[str, ...] = ()  # filled from the data's sub-folders by class-conditional recipes
    # Augmentation of every image D sees (translate.augment): none, diff (DiffAugment), ada, or auto: DiffAugment
    # below 5,000 training images (Zhao et al. 2020's regime), none above; resolved when training starts.
    augment: Literal["auto", "none", "diff", "ada"] = "auto"
    # The Improved-GAN techniques (Salimans et al. 2016), off by default:
    feature_matching: bool = False  # G matches the mean of D's features on real images instead of fooling D
    minibatch_kernels: int = 0  # minibatch discrimination in D: B kernels of 5 dimensions (100 in the paper)
    minibatch_std: bool = False  # D sees each group's feature spread (Karras et al. 2018's simpler variant)
    historical_averaging: float = 0.0  # λ of ‖θ − mean of past θ‖², for G and D; 0: off
    real_label: float = 1.0  # D's target on real images (lsgan, vanilla); 0.9: one-sided label smoothing

    @property
    def lr_G(self) -> float:
        """The generator's learning rate: generator_lr, or optim.lr when that is 0."""
        return self.generator_lr or self.optim.lr

    @staticmethod
    def image_sizes() -> tuple[int, int]:
        """The smallest and largest image_size (powers of two) the recipe's networks are built for."""
        return 32, 256

    def __post_init__(self) -> None:
        size, (low, high) = self.data.image_size, self.image_sizes()
        if size < low or size > high or size & (size - 1):
            raise ConfigError(f"image_size must be a power of two from {low} to {high}, got {size}")
        # Bounded: a model file's config is built before its generator (translate.config's limits).
        check_size("latent_dim", self.latent_dim, 1, MAX_LATENT)
        check_size("generator_channels", self.generator_channels, 1, MAX_CHANNELS)
        check_size("discriminator_channels", self.discriminator_channels, 1, MAX_CHANNELS)
        if len(self.class_names) > MAX_CLASSES:
            raise ConfigError(f"class_names must hold at most {MAX_CLASSES} classes, got {len(self.class_names)}")
        if self.epochs < 1:
            raise ConfigError("epochs must be >= 1")
        check_size("minibatch_kernels", self.minibatch_kernels, 0, MAX_CHANNELS)
        if self.generator_lr < 0:
            raise ConfigError(f"generator_lr must be >= 0 (0: optim.lr), got {self.generator_lr}")
        if self.historical_averaging < 0 or not 0.5 <= self.real_label <= 1:
            raise ConfigError("historical_averaging must be >= 0 and real_label in [0.5, 1]")
        object.__setattr__(self, "class_names", tuple(self.class_names))  # JSON gives a list back


def build_generator(
    config: GeneratorConfig, direction: str = "generate", *, network: type[DCGANGenerator] = DCGANGenerator
) -> DCGANGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a generator has only 'generate'")
    return network(
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


def build_discriminator(config: GeneratorConfig, **options: object) -> DCGANDiscriminator:
    """The recipe's discriminator (critic) with the minibatch layers the config asks for; `options`: its norm and
    classes."""
    assert config.data.channels is not None
    return DCGANDiscriminator(
        config.data.channels,
        config.data.image_size,
        base_channels=config.discriminator_channels,
        minibatch_std=config.minibatch_std,
        minibatch_kernels=config.minibatch_kernels,
        **options,  # type: ignore[arg-type]
    )


class HistoricalAverage:
    """Salimans et al. 2016, §3.3: λ‖θ − (1/t) Σ_i θ_i‖², a pull toward the running mean of a network's past
    weights that damps the oscillations of the game. The mean is part of the run's state (exact resume)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.mean = [p.detach().clone() for p in module.parameters()]
        self.count = torch.zeros((), dtype=torch.float64)

    def penalty(self) -> Tensor:
        return sum((p - m).pow(2).sum() for p, m in zip(self.module.parameters(), self.mean, strict=True))

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        for p, m in zip(self.module.parameters(), self.mean, strict=True):
            m.add_((p.detach() - m) / float(self.count))

    def state(self, prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}.count": self.count, **{f"{prefix}.{i}": m for i, m in enumerate(self.mean)}}

    def load_state(self, state: dict[str, Tensor], prefix: str) -> None:
        self.count = state[f"{prefix}.count"].clone()
        for i, m in enumerate(self.mean):
            m.copy_(state[f"{prefix}.{i}"])


def build_networks(
    config: GeneratorConfig,
    engine: Engine,
    discriminator: Callable[[], torch.nn.Module],
    generator: Callable[[], torch.nn.Module] | None = None,
    *,
    partial: bool = False,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """G (DCGAN's unless `generator` builds another) and D with DCGAN's N(0, gain) init (init_gain 0: PyTorch's
    default initialisation), on the engine's device; the weights depend on the seed alone and the global RNG is
    left as it was. `partial`: steps leave some parameters unused (Engine.prepare)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        G = generator() if generator is not None else build_generator(config)
        D = discriminator()
        if config.init_gain > 0:
            for net in (G, D):
                init_weights(net, config.init_gain)
    return engine.prepare(G, partial=partial), engine.prepare(D, partial=partial)


def make_data(
    config: GeneratorConfig,
    data: Path | None,
    *,
    labeled: bool = False,
    clusters: int = 0,
    domain_a: Path | None = None,
    domain_b: Path | None = None,
    console: Console | None = None,
) -> TrainingData:
    """Every image under `data` (recursively), or one class per sub-folder when `labeled`, or one class per
    cluster of the images when `clusters` is K (translate.data.clusters)."""
    if data is None or domain_a is not None or domain_b is not None:
        raise DataArgumentError("give one folder of images (DATA); --domain-a/--domain-b are for translation models")
    shares: tuple[float, ...] = ()
    if clusters:
        images = scan_domain(data, config.data.channels, console=console)
        labels, shares = cluster_images(
            images, clusters, image_size=config.data.image_size, seed=config.train.seed, console=console
        )
        names = [str(i) for i in range(clusters)]
    elif labeled:
        images, labels, names = scan_classes(data, config.data.channels, console=console)
    else:
        images, labels, names = scan_domain(data, config.data.channels, console=console), None, []

    def at_size(image_size: int) -> ImageDataset:
        # The same images, labels and flips at another size: the counter picks the same image at every size.
        return ImageDataset(images, labels, image_size=image_size, flip=config.data.flip, seed=config.train.seed)

    kind = "grayscale" if images.channels == 1 else "RGB"
    summary = f"{len(images)} images"
    if names:
        summary += f" in {len(names)} {'clusters' if clusters else 'classes'}"
    return TrainingData(
        dataset=at_size(config.data.image_size),
        preview=preview_inputs(config.latent_dim, len(names), config.train.seed),
        summary=f"{summary}, {kind}",
        channels=images.channels,
        images=len(images),
        class_names=tuple(names),
        cluster_shares=shares,
        at_size=at_size,
    )


def preview_inputs(latent_dim: int, num_classes: int, seed: int) -> dict[str, Tensor]:
    """Fixed latents (and labels: each row one class, cycling) so previews show the same samples over time."""
    generator = torch.Generator().manual_seed(seed + 12345)
    z = torch.randn(PREVIEW_SAMPLES, latent_dim, generator=generator)
    labels = torch.arange(PREVIEW_SAMPLES) // 8 % max(num_classes, 1)
    return {"z": z, "label": labels}


def preview_rows(
    G: torch.nn.Module, inputs: dict[str, Tensor], class_names: tuple[str, ...]
) -> list[tuple[str, Tensor]]:
    """An 8×8 grid of samples from fixed inputs, in eval mode (batch-norm running statistics); a conditional
    generator's rows are labelled with their class (each row is one class, `preview_inputs`)."""
    conditional = bool(class_names)
    G.eval()
    try:
        with torch.no_grad():
            images = G(inputs["z"], inputs["label"] if conditional else None)
    finally:
        G.train()
    labels = [class_names[int(row[0])] if conditional else "" for row in inputs["label"].split(8)]
    return list(zip(labels, images.split(8), strict=True))


class GeneratorRecipe:
    """What a generation recipe exposes besides its train_step: networks G and D, their optimisers, previews."""

    config: GeneratorConfig
    engine: Engine
    G: torch.nn.Module  # a DCGANGenerator, possibly inside the engine's wrappers
    D: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    conditional = False
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator G": ("G",),
        "discriminator D": ("D", "D_real", "D_fake"),
    }

    def setup_techniques(self) -> None:
        """Augmentation and historical averaging, as the config asks (call after G and D exist)."""
        c = self.config
        # `auto` is decided from the data when training starts (training/launch.py); a recipe built without data, to
        # read a checkpoint, augments nothing.
        self.augment = Augment("none" if c.augment == "auto" else c.augment).to(self.engine.device)
        D, G = self.engine.unwrap(self.D), self.engine.unwrap(self.G)
        self.history = [HistoricalAverage(G), HistoricalAverage(D)] if c.historical_averaging else []

    def generator_objective(self, adversarial: Tensor, real: Tensor, fake: Tensor) -> Tensor:
        """G's loss: the adversarial one, or feature matching (Salimans et al. 2016, §3.1): ‖E φ(x) − E φ(G(z))‖²
        on D's features φ, the real side fixed; plus historical averaging when on."""
        loss = adversarial
        if self.config.feature_matching:
            features = self.engine.unwrap(self.D).features
            with torch.no_grad():
                target = features(self.augment(real)).float().mean(dim=0)
            loss = (features(self.augment(fake)).float().mean(dim=0) - target).pow(2).sum()
        if self.history:
            loss = loss + self.config.historical_averaging * self.history[0].penalty()
        return loss

    def discriminator_extra(self) -> Tensor | float:
        """Historical averaging's term of D's loss (0 when off)."""
        return self.config.historical_averaging * self.history[1].penalty() if self.history else 0.0

    def after_step(self, real_scores: Tensor) -> dict[str, Tensor]:
        """ADA's overfitting signal and the historical means, once both networks have stepped; ADA's p to log."""
        self.augment.observe(real_scores, real_scores.shape[0])
        for average in self.history:
            average.update()
        return {"aug_p": self.augment.p.float()} if self.config.augment == "ada" else {}

    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        class_names = self.config.class_names if self.conditional else ()
        return preview_rows(self.engine.unwrap(self.G), inputs, class_names)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.engine.unwrap(self.G), "D": self.engine.unwrap(self.D)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def extra_state(self) -> dict[str, Tensor]:
        """ADA's p (and its running sum) and the historical means: what networks, optimisers and RNG do not hold."""
        state = {f"augment.{k}": v for k, v in self.augment.state_dict().items()}
        for name, average in zip(("G", "D"), self.history, strict=False):
            state |= average.state(f"history.{name}")
        return state

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        augment = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("augment.")}
        if augment:  # runs saved before augmentation existed start it afresh
            self.augment.load_state_dict(augment)
        for name, average in zip(("G", "D"), self.history, strict=False):
            average.load_state(state, f"history.{name}")
