"""pix2pix (Isola, Zhu, Zhou, Efros 2017, arXiv:1611.07004): paired image-to-image translation.

Notation follows the paper's code: real_A is the input x, real_B the target y, fake_B = G(x). Defaults are the
paper's: a U-Net generator (8 levels at 256 px) with dropout as its only noise, a 70×70 PatchGAN that judges the
pair (input, output) concatenated on the channel axis, batch norm, the vanilla (cross-entropy) GAN loss plus
λ_L1 = 100 times the L1 distance to the target, Adam(2e-4, β1 0.5), batch 1, jitter 286 → 256 + flip, and
100 epochs at a constant learning rate then 100 of linear decay to zero (the reference code's schedule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor, nn

from translate.config import (
    MAX_CHANNELS,
    MAX_PATCHGAN_LAYERS,
    MAX_UNET_DEPTH,
    DataConfig,
    OptimConfig,
    TrainConfig,
    check_size,
)
from translate.core.engine import Engine
from translate.data.paired import PairedDataset, paired_sources, preview_pairs, scan_pairs
from translate.errors import ConfigError
from translate.losses import discriminator_loss, generator_loss
from translate.networks.layers import init_weights
from translate.networks.patchgan import PatchDiscriminator
from translate.networks.unet import UnetGenerator, unet_depth
from translate.recipes.base import TrainingData, linear_decay, set_learning_rate

MIN_DEPTH = 4  # below 4 levels (image sizes not divisible by 16) the "U" has almost no receptive field


@dataclass(frozen=True)
class Pix2PixConfig:
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    direction: Literal["a2b", "b2a"] = "a2b"  # a2b: A (left half, or A/) is the input; b2a: B is
    generator_channels: int = 64  # ngf
    discriminator_channels: int = 64  # ndf
    depth: int | None = None  # U-Net levels; None: from image_size (8 at 256 px: a 1×1 bottleneck)
    discriminator_layers: int = 3  # 3 strided layers: 70×70 patches
    norm: Literal["batch", "instance"] = "batch"  # normalisation in both networks
    dropout: float = 0.5  # in the decoder's deepest 512-channel levels: the paper's noise source
    gan_loss: Literal["vanilla", "lsgan"] = "vanilla"  # cross-entropy (the paper) or least squares
    lambda_l1: float = 100.0  # weight of the L1 distance to the target (λ)
    init_gain: float = 0.02  # weights drawn from N(0, init_gain)
    epochs: int = 200  # when train.steps is 0: 100 epochs constant + 100 epochs decay
    decay_from: float = 0.5  # fraction of training after which the learning rate decays linearly to zero

    def __post_init__(self) -> None:
        if self.direction not in ("a2b", "b2a"):  # --direction arrives as a plain string, not parsed by --set
            raise ConfigError(f"direction must be a2b or b2a, got {self.direction!r}")
        # Sizes before the powers of two below, and bounded: a model file's config is built before its networks.
        check_size("generator_channels", self.generator_channels, 1, MAX_CHANNELS)
        check_size("discriminator_channels", self.discriminator_channels, 1, MAX_CHANNELS)
        check_size("depth", self.depth, MIN_DEPTH, MAX_UNET_DEPTH)
        check_size("discriminator_layers", self.discriminator_layers, 1, MAX_PATCHGAN_LAYERS)
        if self.depth is not None and self.data.image_size % 2**self.depth:
            raise ConfigError(f"image_size {self.data.image_size} must be a multiple of 2**depth ({2**self.depth})")
        if self.resolved_depth < MIN_DEPTH:
            raise ConfigError(
                f"image_size must be a multiple of {2**MIN_DEPTH} for the U-Net (got {self.data.image_size}); "
                "the paper uses 256"
            )
        smallest = 3 * 2**self.discriminator_layers  # each PatchGAN output needs a 3×3 field after the strides
        if self.data.image_size < smallest:
            raise ConfigError(
                f"image_size {self.data.image_size} is too small for a {self.discriminator_layers}-layer PatchGAN "
                f"(needs >= {smallest}); use a larger --image-size or --set discriminator_layers=N"
            )
        if not 0 <= self.dropout < 1 or not 0 <= self.decay_from <= 1:
            raise ConfigError("dropout must be in [0, 1) and decay_from in [0, 1]")
        if self.lambda_l1 < 0 or self.epochs < 1:
            raise ConfigError("lambda_l1 must be >= 0 and epochs >= 1")

    @property
    def resolved_depth(self) -> int:
        return self.depth if self.depth is not None else unet_depth(self.data.image_size)


PRESETS: dict[str, dict[str, object]] = {
    # For tests and smoke runs: a few channels at 32 px, seconds per step on any CPU.
    "tiny": {"data.image_size": 32, "generator_channels": 8, "discriminator_channels": 8},
    # The paper's setting for 256×256 datasets such as facades.
    "paper": {},
    # A few minutes on a laptop CPU: 64 px, half-width networks, a short schedule.
    "quick": {
        "data.image_size": 64,
        "generator_channels": 32,
        "discriminator_channels": 32,
        "train.steps": 600,
        "train.log_every": 20,
        "train.preview_every": 100,
        "train.checkpoint_every": 200,
    },
}

# One generator: input → target in the direction the model was trained (config.direction).
DIRECTIONS: dict[str, str] = {"a2b": "G"}


def build_generator(config: Pix2PixConfig, direction: str = "a2b") -> UnetGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a pix2pix model has one generator, a2b (input → output)")
    channels = config.data.channels or 3
    return UnetGenerator(
        channels,
        channels,
        depth=config.resolved_depth,
        base_channels=config.generator_channels,
        norm=config.norm,
        dropout=config.dropout,
    )


def make_data(
    config: Pix2PixConfig,
    data: Path | None,
    *,
    domain_a: Path | None = None,
    domain_b: Path | None = None,
    console: Console | None = None,
) -> TrainingData:
    train_source, held_out = paired_sources(data, domain_a, domain_b)
    pairs = scan_pairs(train_source, config.data.channels, console=console)
    view = scan_pairs(held_out, pairs.channels, console=console, limit=4) if held_out else pairs
    swap = config.direction == "b2a"
    dataset = PairedDataset(
        pairs,
        image_size=config.data.image_size,
        load_size=config.data.resolved_load_size,
        flip=config.data.flip,
        seed=config.train.seed,
        swap=swap,
    )
    kind = "grayscale" if pairs.channels == 1 else "RGB"
    summary = f"{len(pairs)} pairs ({train_source.layout}, {kind}), input {'B' if swap else 'A'}"
    preview = preview_pairs(view, 4, config.data.image_size, swap=swap)
    return TrainingData(dataset=dataset, preview=preview, summary=summary, channels=pairs.channels)


class Pix2Pix:
    """A U-Net generator and a conditional PatchGAN; each step updates D on (x, y) vs (x, G(x)), then G."""

    name = "pix2pix"
    batches_per_step = 1
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator G": ("G", "adv", "L1"),
        "discriminator D": ("D", "D_real", "D_fake"),
    }

    def __init__(self, config: Pix2PixConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
            torch.manual_seed(config.train.seed)
            G = build_generator(config)
            D = PatchDiscriminator(
                2 * config.data.channels,  # D sees the input and the (real or generated) output together
                base_channels=config.discriminator_channels,
                num_layers=config.discriminator_layers,
                norm=config.norm,
            )
            for net in (G, D):
                init_weights(net, config.init_gain)
        self.G, self.D = engine.prepare(G), engine.prepare(D)
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(self.G.parameters(), lr=config.optim.lr, betas=betas)
        self.opt_D = engine.adam(self.D.parameters(), lr=config.optim.lr, betas=betas)

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """D step then G step, as the reference code's optimize_parameters."""
        c = self.config
        set_learning_rate(linear_decay(c.optim.lr, step, c.train.steps, c.decay_from), self.opt_G, self.opt_D)
        real_A, real_B = batch["A"], batch["B"]

        # D: real pairs (x, y) vs fake pairs (x, G(x)); halved so D learns slower than G (paper, section 3.3).
        with self.engine.autocast():
            fake_B = self.G(real_A)
            loss_real, loss_fake = discriminator_loss(
                c.gan_loss,
                self.D(torch.cat([real_A, real_B], dim=1)),
                self.D(torch.cat([real_A, fake_B.detach()], dim=1)),
            )
            loss_D = 0.5 * (loss_real + loss_fake)
        self.engine.optimize(loss_D, self.opt_D)

        # G: fool the just-updated D and stay near the target in L1 (low frequencies; D handles the high ones).
        with self.engine.frozen(self.D):
            with self.engine.autocast():
                adv = generator_loss(c.gan_loss, self.D(torch.cat([real_A, fake_B], dim=1)))
                l1 = F.l1_loss(fake_B, real_B) * c.lambda_l1
                loss_G = adv + l1
            self.engine.optimize(loss_G, self.opt_G)
        metrics = {"G": loss_G, "D": loss_D, "adv": adv, "L1": l1, "D_real": loss_real, "D_fake": loss_fake}
        return {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """Rows of a preview grid: input x, G(x) in eval mode (as apply and export run it), target y."""
        G = self.engine.unwrap(self.G)
        G.eval()
        try:
            return [("input", inputs["A"]), ("G(input)", G(inputs["A"])), ("target", inputs["B"])]
        finally:
            G.train()

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.engine.unwrap(self.G), "D": self.engine.unwrap(self.D)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def extra_state(self) -> dict[str, Tensor]:
        return {}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        """Nothing beyond networks, optimisers and RNG: the trainer restores those."""
