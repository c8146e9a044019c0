"""Progressive growing of GANs (Karras, Aila, Laine, Lehtinen 2018, arXiv:1710.10196).

Training starts at 4×4 and doubles the resolution up to `data.image_size`. Each new resolution is first faded in,
α rising linearly from 0 to 1 over `phase_images` training images, then stabilised for as many (the paper: 800k
each); the final resolution's stabilising phase runs to `train.steps`. The phases are the trainer's
(translate.recipes.base.Phase): the data is loaded at each phase's resolution and batch size, and the level and α
of a step are pure functions of the step, so a run resumes exactly anywhere, mid-fade included.

The loss is WGAN-GP's (λ = 10, one critic step per G step) plus the drift term ε_drift·E[D(x)²], ε_drift = 0.001,
which keeps the critic's scores near zero; Adam(1e-3, β = (0, 0.99), ε = 1e-8) for both networks; the networks
(translate.networks.progan) have pixel norm, equalised learning rates and the minibatch-std layer; previews and
every deployed image come from G's moving average (the paper's G smoothing: a half-life of 10k images, as the
official code's G_smoothing_kimg). Minibatch 16 up to 128 px, then the paper's 14, 6 and 3 at 256, 512 and 1024 px
(`batch_sizes` to choose others). While a level fades in, D's real images are blended with their lower resolution
by the same α (the official code's interpolation of the reals), so real and generated images change alike.

Deviations: z ~ N(0, I) without the paper's projection onto the hypersphere (the first pixel norm does that
anyway); the gradient penalty's target norm is 1 (WGAN-GP's), as in the paper's CelebA-HQ setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor

from translate.config import DataConfig, OptimConfig, TrainConfig, check_size
from translate.core.engine import Engine
from translate.description import GeneratorInput
from translate.errors import ConfigError
from translate.networks.progan import Alpha, ProGANDiscriminator, ProGANGenerator, fade_reals, level_sizes
from translate.recipes.base import Phase, TrainingData, phase_at, phase_starts
from translate.recipes.generation import DIRECTIONS, GeneratorConfig, GeneratorRecipe, build_networks
from translate.recipes.wgan_gp import gradient_penalty

# The paper's minibatch where it shrinks for memory (§A.1, CelebA-HQ); 16 below.
PAPER_BATCH_SIZES = {256: 14, 512: 6, 1024: 3}

PRESETS: dict[str, dict[str, object]] = {
    # Grows 4 → 8 → 16 px, one step per phase at batch 4: four test steps cross every kind of phase boundary.
    "tiny": {
        "data.image_size": 16,
        "generator_channels": 8,
        "discriminator_channels": 8,
        "max_channels": 16,
        "latent_dim": 8,
        "train.batch_size": 4,
        "phase_images": 4,
    },
    # The official code's widths at 64 px (8192 / 2^stage feature maps, at most 512: 256 at 64 px), 800k images
    # per phase; CelebA-HQ's 1024 px is `--set data.image_size=1024 --set generator_channels=16 ...`.
    "paper": {"generator_channels": 256, "discriminator_channels": 256},
    # Digits at 32 px in minutes of CPU: 16 maps at 32 px doubling to 128, 6,000 images (1.5 passes over 4,000
    # digits) per phase, so the growth to 32 px takes about 40k images.
    "mnist": {
        "data.image_size": 32,
        "latent_dim": 128,
        "generator_channels": 16,
        "discriminator_channels": 16,
        "max_channels": 128,
        "train.batch_size": 32,
        "phase_images": 6_000,
    },
}


@dataclass(frozen=True)
class ProGANConfig(GeneratorConfig):
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=64, flip=False))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, beta1=0.0, beta2=0.99))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16, ema_half_life=10_000))
    latent_dim: int = 512  # the paper's 512-dimensional z
    generator_channels: int = 64  # G's feature maps at the final resolution (doubling towards 4 px, capped)
    discriminator_channels: int = 64  # D's feature maps at the final resolution
    max_channels: int = 512  # the cap on any level's feature maps (the paper's 512)
    init_gain: float = 0.0  # equalised learning rate: weights N(0, 1), scaled at run time (never re-initialised)
    augment: Literal["auto", "none", "diff", "ada"] = "none"  # the paper augments nothing (mirroring aside)
    minibatch_std: bool = True  # part of the architecture: D's last block sees the minibatch standard deviation
    phase_images: int = 800_000  # training images per fade-in and per stabilising phase (the paper's 800k)
    # Per-process batch at given resolutions, "RES:BATCH,..." (e.g. "4:64,8:64,16:32"); unlisted resolutions
    # take train.batch_size, or the paper's 14/6/3 at 256/512/1024 px.
    batch_sizes: str = ""
    lambda_gp: float = 10.0  # weight of WGAN-GP's gradient penalty
    drift: float = 0.001  # ε_drift, the weight of E[D(x)²]

    @staticmethod
    def image_sizes() -> tuple[int, int]:
        return 16, 1024  # from 16 px (the smallest training crop) to the paper's 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        check_size("max_channels", self.max_channels, 1, 4096)
        check_size("phase_images", self.phase_images, 1, 10**9)
        if self.lambda_gp < 0 or self.drift < 0:
            raise ConfigError("lambda_gp and drift must be >= 0")
        refused = {
            "class_names": bool(self.class_names),  # unconditional
            "feature_matching": self.feature_matching,
            "minibatch_kernels": bool(self.minibatch_kernels),
            "minibatch_std=false": not self.minibatch_std,
            "real_label": self.real_label != 1.0,
            "init_gain": self.init_gain != 0,  # the equalised learning rate's N(0, 1) weights are the init
        }
        if any(refused.values()):
            names = ", ".join(name for name, on in refused.items() if on)
            raise ConfigError(f"progan: {names} do not apply to a progressively grown WGAN-GP critic")
        self.level_batch_sizes()  # a malformed batch_sizes fails here, when the config is made

    def level_batch_sizes(self) -> dict[int, int]:
        """Per-process batch at every resolution 4 … image_size."""
        sizes = level_sizes(self.data.image_size)
        chosen: dict[int, int] = {}
        for item in filter(None, (part.strip() for part in self.batch_sizes.split(","))):
            res, _, batch = item.partition(":")
            if not (res.isdigit() and batch.isdigit()) or int(res) not in sizes or int(batch) < 1:
                raise ConfigError(
                    f"batch_sizes: {item!r} is not RES:BATCH with RES one of {', '.join(map(str, sizes))} "
                    "and BATCH >= 1 (e.g. batch_sizes=4:64,8:64,16:32)"
                )
            chosen[int(res)] = int(batch)
        default = {s: PAPER_BATCH_SIZES.get(s, self.train.batch_size) for s in sizes}
        return default | chosen


def build_generator(config: ProGANConfig, direction: str = "generate") -> ProGANGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a generator has only 'generate'")
    return ProGANGenerator(
        config.latent_dim,
        config.data.channels or 3,
        config.data.image_size,
        base_channels=config.generator_channels,
        max_channels=config.max_channels,
    )


def build_discriminator(config: ProGANConfig) -> ProGANDiscriminator:
    assert config.data.channels is not None
    return ProGANDiscriminator(
        config.data.channels,
        config.data.image_size,
        base_channels=config.discriminator_channels,
        max_channels=config.max_channels,
    )


def generator_inputs(config: ProGANConfig) -> tuple[GeneratorInput, ...]:
    """z ~ N(0, I) of latent_dim (ProGANGenerator's argument)."""
    return (GeneratorInput("z", "normal", (config.latent_dim,)),)


def phases(config: ProGANConfig) -> tuple[Phase, ...]:
    """4 px stabilising; then per doubling a fade-in and a stabilising phase, each `phase_images` long; the last
    stabilising phase open-ended (to train.steps)."""
    batch = config.level_batch_sizes()
    sizes = level_sizes(config.data.image_size)
    out = [Phase(images=config.phase_images, image_size=sizes[0], batch_size=batch[sizes[0]])]
    for size in sizes[1:]:
        out.append(Phase(images=config.phase_images, image_size=size, batch_size=batch[size]))  # fade-in
        out.append(Phase(images=config.phase_images, image_size=size, batch_size=batch[size]))  # stabilise
    last = out[-1]
    out[-1] = Phase(image_size=last.image_size, batch_size=last.batch_size)
    return tuple(out)


def default_steps(config: ProGANConfig, data: TrainingData) -> int:
    """Every phase, the last stabilising one as long as the others: 2·levels − 1 phases of phase_images each."""
    grown = phases(config)
    final = Phase(images=config.phase_images, batch_size=grown[-1].batch_size)
    return phase_starts((*grown[:-1], final), config.train.batch_size)[-1] + int(final.length(config.train.batch_size))


def step_fades(starts: tuple[int, ...], step: int) -> bool:
    """Whether (0-based) step `step` is in a fade-in phase (the odd ones)."""
    return phase_at(step, starts) % 2 == 1


def growth(starts: tuple[int, ...], step: int) -> tuple[int, float]:
    """(level, α) of (0-based) step `step`: phase 0 is level 0; phase 2l − 1 fades level l in, α = (step − start)
    / length rising from 0; phase 2l stabilises it at α = 1."""
    index = phase_at(step, starts)
    level = (index + 1) // 2
    if index % 2 == 0:
        return level, 1.0
    return level, (step - starts[index]) / (starts[index + 1] - starts[index])


class ProGAN(GeneratorRecipe):
    """Generator and critic grown together; each step is one critic update and one G update at the step's level."""

    name = "progan"
    batches_per_step = 1
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator G": ("G",),
        "critic D": ("D", "W", "GP", "drift"),
        "growth: resolution and fade-in α (not losses)": ("resolution", "alpha"),
    }

    def __init__(self, config: ProGANConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        self.G, self.D = build_networks(
            config, engine, lambda: build_discriminator(config), lambda: build_generator(config), partial=True
        )
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(self.G.parameters(), lr=config.lr_G, betas=betas)
        self.opt_D = engine.adam(self.D.parameters(), lr=config.optim.lr, betas=betas)
        self.setup_techniques()
        self.starts = phase_starts(phases(config), config.train.batch_size, engine.world_size)
        # The level and α of the last step trained: previews draw there.
        self.level: int = 0
        self.alpha: Alpha = 1.0

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        c = self.config
        level, fraction = growth(self.starts, step)
        # While a level fades in α is a tensor (see translate.networks.progan.Alpha), even at its first step's 0.
        alpha: Alpha = torch.tensor(fraction, device=batch["image"].device) if step_fades(self.starts, step) else 1.0
        self.level, self.alpha = level, alpha
        real = fade_reals(batch["image"], alpha)  # loaded at the level's resolution
        z = torch.randn(real.shape[0], c.latent_dim, device=real.device)

        def critic(images: Tensor) -> Tensor:
            return self.D(images, level=level, alpha=alpha)

        # Critic: E[D(G(z))] − E[D(x)] + λ·GP + ε_drift·E[D(x)²].
        with self.engine.autocast():
            real_seen, fake_seen = self.augment(real), self.augment(self.G(z, level=level, alpha=alpha).detach())
            real_scores = critic(real_seen)
            wasserstein = real_scores.mean() - critic(fake_seen).mean()
        drift = real_scores.float().pow(2).mean()
        penalty = gradient_penalty(critic, real_seen, fake_seen)
        loss_D = -wasserstein + c.lambda_gp * penalty + c.drift * drift + self.discriminator_extra()
        self.engine.optimize(loss_D, self.opt_D)

        z = torch.randn(real.shape[0], c.latent_dim, device=real.device)
        with self.engine.frozen(self.D):
            with self.engine.autocast():
                fake = self.G(z, level=level, alpha=alpha)
                loss_G = self.generator_objective(-critic(self.augment(fake)).mean(), real, fake)
            self.engine.optimize(loss_G, self.opt_G)
        logged = self.after_step(real_scores)
        return {
            "G": loss_G.detach(),
            "D": loss_D.detach(),
            "W": wasserstein.detach(),
            "GP": penalty.detach(),
            "drift": drift.detach(),
            "resolution": torch.tensor(float(real.shape[-1]), device=real.device),
            "alpha": torch.tensor(fraction, device=real.device),
            **logged,
        }

    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """An 8×8 grid of samples from fixed latents at the resolution being trained, upscaled (nearest) to the
        final size for display."""
        G = self.engine.unwrap(self.G)
        with torch.no_grad():
            images = G(inputs["z"], level=self.level, alpha=self.alpha).float().clamp(-1, 1)
        scale = self.config.data.image_size // images.shape[-1]
        images = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
        return [("", row) for row in images.split(8)]
