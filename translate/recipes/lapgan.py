"""LAPGAN (Denton, Chintala, Szlam, Fergus 2015, arXiv:1506.05751): generation by a Laplacian pyramid of GANs.

An image I is split into its Laplacian pyramid (translate.networks.lapgan): with d halving (the 2×2 mean) and u
doubling (bilinear), the Gaussian pyramid is I_K = I, I_{k−1} = d(I_k) down to the coarse I_0 (8×8 by default,
`coarse_size`), and the bands are h_k = I_k − u(I_{k−1}), so that I_k = u(I_{k−1}) + h_k exactly. Levels are
counted from the coarsest (the paper counts from the image). Each level has a GAN of its own: G_0 draws the coarse
image from noise, and every finer G_k is a conditional GAN (Mirza & Osindero 2014) on the low-pass image
l_k = u(I_{k−1}) that draws the band, with a noise plane z_k at its resolution. Samples are drawn coarse to fine:

    Ĩ_0 = G_0(z),    Ĩ_k = u(Ĩ_{k−1}) + G_k(u(Ĩ_{k−1}), z_k)    (k = 1..K)

Training (§3.2): the levels are trained independently, each on the real pyramid, so G_k is conditioned on the real
l_k = u(d(I_k)) of the batch, never on a generated coarser image. Each level's D_k judges the pair (l_k, I_k)
against (l_k, l_k + G_k(l_k, z_k)); D_0 judges I_0 against G_0(z). The losses are the GAN's non-saturating ones
(binary cross-entropy on logits, in fp32), summed over the levels:

    L_D = Σ_k −log D_k(l_k, I_k) − log(1 − D_k(l_k, l_k + h̃_k)),    L_G = Σ_k −log D_k(l_k, l_k + h̃_k)

The levels share no parameters, so one optimiser per side over the sum makes the same updates as K + 1 separate
trainings (Adam's update is per parameter), in one backward pass each; D steps first, then G through the updated
D, as in the other recipes. Class-conditional on request (`conditional=true`: one sub-folder per class): every G_k
and D_k gets the label, and each level's real and generated images carry the real image's label.

The paper's CIFAR-10 networks are the defaults (translate.networks.lapgan): G_0 and D_0 fully connected with two
hidden ReLU layers of 1200 and 600 units, z of 100 dimensions; G_k three convolutions and D_k two, of 128 filters;
batch 128 (the authors' code, facebook/eyescream). Deviations, and why:

- Adam(2e-4, β1 0.5), DCGAN's, instead of the paper's SGD (learning rate 0.02, divided by 1 + 4·10⁻⁵ each epoch;
  momentum 0.5, raised by 0.0008 each epoch up to 0.8). That schedule goes with the paper's model selection (each
  level's best model by a Parzen-window estimate of held-out likelihood, over days of training), and the authors'
  released scripts use other values again (0.01, divided by 1 + 4·10⁻⁶; momentum 0 up to 0.7): it was tuned to their
  runs. Adam at DCGAN's setting trains networks of these kinds without a schedule, and it is the other generation
  recipes' here.
- D_k sees (l_k, l_k + h) as 2C channels. The paper's D_k adds l_k to h before its first layer, so it sees only the
  image, not what the image was conditioned on; the pair lets D_k judge the band given its low-pass image.
- Batch norm between G_k's convolutions (DCGAN's rule, with the optimiser above; the paper's G_k have none), and
  DCGAN's N(0, 0.02) initialisation (the paper names none).
- z and the noise planes z_k ~ N(0, I) rather than U(−1, 1): the samplers and slerp walks draw Gaussian inputs.
- 32 px as 8 → 16 → 32 (the paper's CIFAR-10 pyramid is 8 → 14 → 28, on 28 px crops).

Augmentation (translate.augment) applies to every level's D input, real and generated alike. On a finer level's
pair the same translation and cutout move l_k and I_k together, and a brightness or contrast change shifts both,
so the pair stays consistent; saturation needs 3 channels, so on RGB data it acts on D_0's images only. ADA reads
every level's real logits. The Improved-GAN techniques that act on one discriminator's features (feature matching,
minibatch discrimination, minibatch standard deviation) are refused; historical averaging and one-sided label
smoothing apply to all levels alike. Generator EMA (train.ema_half_life) averages the one module G, every level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from translate.config import MAX_CHANNELS, DataConfig, check_size
from translate.core.engine import Engine
from translate.description import GeneratorInput
from translate.errors import ConfigError, DataArgumentError, DataError
from translate.losses import discriminator_loss, generator_loss
from translate.networks.lapgan import (
    LAPGANDiscriminator,
    LAPGANGenerator,
    gaussian_pyramid,
    level_input,
    noise_name,
    pyramid_sizes,
    upsample,
)
from translate.recipes import generation
from translate.recipes.base import TrainingData
from translate.recipes.generation import (
    DIRECTIONS,
    PREVIEW_SAMPLES,
    TINY_PRESET,
    GeneratorConfig,
    GeneratorRecipe,
    build_networks,
)

PRESETS: dict[str, dict[str, object]] = {
    "tiny": {**TINY_PRESET, "generator_units": 16, "discriminator_units": 16},  # levels 8, 16, 32
    "paper": {},  # CIFAR-10's sizes: 32 px from 8, 1200/600 units, 128 filters, batch 128
    # Digits at 32 px with half the paper's filters (a CPU trains it); no augmentation, as in the paper.
    "mnist": {
        "train.batch_size": 64,
        "train.steps": 5000,
        "generator_channels": 64,
        "discriminator_channels": 64,
        "augment": "none",
    },
}
PREVIEW_COLUMNS = 8


@dataclass(frozen=True)
class LAPGANConfig(GeneratorConfig):
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=32, flip=False))  # CIFAR-10's 32 px
    latent_dim: int = 100  # z, G_0's input (the paper's coarse level: a 100-dimensional z)
    coarse_size: int = 8  # the coarsest level, px: the paper's "≤ 8×8"; levels double from it up to image_size
    generator_units: int = 1200  # G_0's two fully connected hidden layers (the paper: 1200 ReLU units)
    discriminator_units: int = 600  # D_0's two fully connected hidden layers (the paper: 600 units, dropout)
    generator_channels: int = 128  # filters of each finer G_k's convolutions (the authors' code: 128)
    discriminator_channels: int = 128  # filters of each finer D_k's convolutions (the authors' code: 128)
    conditional: bool = False  # class-conditional: one sub-folder per class, every G_k and D_k gets the label

    def __post_init__(self) -> None:
        super().__post_init__()
        size = self.coarse_size
        if size < 4 or size & (size - 1) or size >= self.data.image_size:
            raise ConfigError(
                f"coarse_size must be a power of two from 4 up and below image_size ({self.data.image_size}), "
                f"got {size}"
            )
        check_size("generator_units", self.generator_units, 1, MAX_CHANNELS)
        check_size("discriminator_units", self.discriminator_units, 1, MAX_CHANNELS)
        refused = {
            "feature_matching": self.feature_matching,
            "minibatch_kernels": bool(self.minibatch_kernels),
            "minibatch_std": self.minibatch_std,
        }
        if any(refused.values()):
            names = ", ".join(name for name, on in refused.items() if on)
            raise ConfigError(
                f"lapgan: {names} act on one discriminator's features, and LAPGAN has one discriminator per level"
            )
        if self.class_names and not self.conditional:
            raise ConfigError("lapgan: class_names are for conditional=true (classes from the data's sub-folders)")

    @property
    def sizes(self) -> tuple[int, ...]:
        """The levels' resolutions, coarse to fine, e.g. (8, 16, 32)."""
        return pyramid_sizes(self.data.image_size, self.coarse_size)


def build_generator(config: LAPGANConfig, direction: str = "generate") -> LAPGANGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a generator has only 'generate'")
    return LAPGANGenerator(
        config.latent_dim,
        config.data.channels or 3,
        config.data.image_size,
        coarse_size=config.coarse_size,
        units=config.generator_units,
        width=config.generator_channels,
        num_classes=len(config.class_names),
    )


def build_discriminator(config: LAPGANConfig) -> LAPGANDiscriminator:
    assert config.data.channels is not None
    return LAPGANDiscriminator(
        config.data.channels,
        config.data.image_size,
        coarse_size=config.coarse_size,
        units=config.discriminator_units,
        width=config.discriminator_channels,
        num_classes=len(config.class_names),
    )


def generator_inputs(config: LAPGANConfig) -> tuple[GeneratorInput, ...]:
    """z ~ N(0, I) of latent_dim first (the latent that walks move), one N(0, 1) noise plane (1, R, R) per finer
    level, named by its resolution (noise_16, noise_32, ...), and a class index when conditional
    (LAPGANGenerator's arguments)."""
    inputs = [GeneratorInput("z", "normal", (config.latent_dim,))]
    inputs += [GeneratorInput(noise_name(size), "normal", (1, size, size)) for size in config.sizes[1:]]
    if config.class_names:
        inputs.append(GeneratorInput("label", "class", (), config.class_names))
    return tuple(inputs)


def make_data(config: LAPGANConfig, data: Path | None, **options: Any) -> TrainingData:
    """Every image under `data` (recursively), or with conditional=true one class per sub-folder; the previews'
    latents, labels and level noise are fixed by the run's seed."""
    try:
        training = generation.make_data(config, data, labeled=config.conditional, **options)
    except DataError as exc:
        if not config.conditional or isinstance(exc, DataArgumentError):
            raise
        raise DataError(f"conditional=true: {exc}") from None
    return dataclasses.replace(training, preview=training.preview | preview_noise(config))


def preview_noise(config: LAPGANConfig) -> dict[str, Tensor]:
    """Fixed noise planes for the preview grid, one per finer level, so previews show the same samples over time."""
    generator = torch.Generator().manual_seed(config.train.seed + 54321)
    return {
        noise_name(size): torch.randn(PREVIEW_SAMPLES, 1, size, size, generator=generator) for size in config.sizes[1:]
    }


class LAPGAN(GeneratorRecipe):
    """A generator and a discriminator per pyramid level, held as one module G and one D; each step updates every
    D_k, then every G_k, each level on the real pyramid of the batch."""

    name = "lapgan"
    batches_per_step = 1

    def __init__(self, config: LAPGANConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        if config.conditional and len(config.class_names) < 2:
            raise ConfigError("conditional=true: class_names (the data's sub-folders) must be resolved before building")
        self.config, self.engine = config, engine
        self.conditional = config.conditional
        self.sizes = config.sizes
        self.noise_names = tuple(noise_name(size) for size in self.sizes[1:])
        self.G, self.D = build_networks(  # DCGAN's N(0, 0.02) init
            config, engine, lambda: build_discriminator(config), lambda: build_generator(config)
        )
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(self.G.parameters(), lr=config.lr_G, betas=betas)
        self.opt_D = engine.adam(self.D.parameters(), lr=config.optim.lr, betas=betas)
        self.setup_techniques()
        self.loss_groups = {
            "generators G_k, by level (px)": tuple(f"G_{size}" for size in self.sizes),
            "discriminators D_k, by level (px)": tuple(f"D_{size}" for size in self.sizes),
            "sums over the levels": ("G", "D"),
        }

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        c = self.config
        real = batch["image"]
        n = real.shape[0]
        y = batch["label"] if self.conditional else None
        # The real pyramid: I_0 ... I_K, and the low-pass images l_k = u(I_{k−1}) = u(d(I_k)) of the finer levels.
        pyramid = gaussian_pyramid(real, len(self.sizes))
        lowpass = [upsample(coarser) for coarser in pyramid[:-1]]
        z = torch.randn(n, c.latent_dim, device=real.device)
        noise = {
            name: torch.randn(n, 1, size, size, device=real.device)
            for name, size in zip(self.noise_names, self.sizes[1:], strict=True)
        }
        real_inputs = [pyramid[0], *(level_input(low, image) for low, image in zip(lowpass, pyramid[1:], strict=True))]

        # D: at every level, maximise log D_k(l_k, I_k) + log(1 − D_k(l_k, l_k + G_k(l_k, z_k))); D_0 on I_0 and
        # G_0(z). Real and generated in separate batches (G's batch norm), both augmented alike.
        with self.engine.autocast():
            fake = self.G(z, y, lowpass=lowpass, **noise)  # [G_0(z), l_1 + h̃_1, ..., l_K + h̃_K]
            fake_inputs = [fake[0], *(level_input(low, image) for low, image in zip(lowpass, fake[1:], strict=True))]
            real_scores = self.D([self.augment(x) for x in real_inputs], y)
            fake_scores = self.D([self.augment(x.detach()) for x in fake_inputs], y)
            per_level = [
                discriminator_loss("vanilla", r.float(), f.float(), c.real_label)
                for r, f in zip(real_scores, fake_scores, strict=True)
            ]
            loss_D = sum(r + f for r, f in per_level) + self.discriminator_extra()
        self.engine.optimize(loss_D, self.opt_D)

        # G: the non-saturating loss at every level, through the just-updated D.
        with self.engine.frozen(self.D):  # gradients through D, not for D's weights
            with self.engine.autocast():
                scores = self.D([self.augment(x) for x in fake_inputs], y)
                adversarial = [generator_loss("vanilla", s.float()) for s in scores]
                # Plus historical averaging when on (the images are for feature matching, which is refused).
                loss_G = self.generator_objective(sum(adversarial), real, fake[-1])
            self.engine.optimize(loss_G, self.opt_G)
        logged = self.after_step(torch.cat(real_scores))
        metrics = {"G": loss_G.detach(), "D": loss_D.detach()}
        for size, loss, (r, f) in zip(self.sizes, adversarial, per_level, strict=True):
            metrics |= {f"G_{size}": loss.detach(), f"D_{size}": (r + f).detach()}
        return metrics | logged

    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """An 8×8 grid sampled coarse to fine from fixed latents and level noise, in eval mode (batch norm's running
        statistics); when conditional, each row one class, labelled with its name."""
        G = self.engine.unwrap(self.G)
        noise = {name: inputs[name] for name in self.noise_names}
        G.eval()
        try:
            with torch.no_grad():
                images = G(inputs["z"], inputs["label"] if self.conditional else None, **noise).clamp(-1, 1)
        finally:
            G.train()
        rows = inputs["label"].split(PREVIEW_COLUMNS)
        labels = [self.config.class_names[int(row[0])] if self.conditional else "" for row in rows]
        return list(zip(labels, images.split(PREVIEW_COLUMNS), strict=True))
