"""CycleGAN (Zhu, Park, Isola, Efros 2017, arXiv:1703.10593): unpaired translation between domains A and B.

Notation follows the paper's: G_AB is G: A→B, G_BA is F: B→A; D_B is D_Y (judges domain B), D_A is D_X.
Defaults are the paper's: ResNet generators (9 blocks at ≥ 256 px, 6 below), 70×70 PatchGANs, LSGAN loss,
λ_cyc = 10, identity weight 0.5·λ_cyc, 50-image history pools, Adam(2e-4, β1 0.5), batch 1, constant learning
rate for the first half of training and linear decay to zero over the second half, weights N(0, 0.02).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor, nn

from translate.augment import Augment, Policy
from translate.config import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_PATCHGAN_LAYERS,
    MAX_POOL,
    DataConfig,
    OptimConfig,
    TrainConfig,
    check_size,
)
from translate.core.engine import Engine
from translate.data.folders import UnpairedDataset, preview_images, scan_domain, unpaired_folders
from translate.errors import ConfigError
from translate.losses import ImagePool, discriminator_loss, generator_loss
from translate.networks.layers import init_weights
from translate.networks.patchgan import PatchDiscriminator
from translate.networks.resnet import Resample, ResnetGenerator
from translate.recipes.base import TrainingData, linear_decay, set_learning_rate


@dataclass(frozen=True)
class CycleGANConfig:
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generator_channels: int = 64  # ngf
    discriminator_channels: int = 64  # ndf
    num_blocks: int | None = None  # residual blocks; None: 9 at image_size >= 256, else 6 (paper, appendix 7.2)
    discriminator_layers: int = 3  # 3 strided layers: 70×70 patches
    norm: Literal["instance", "batch"] = "instance"  # normalisation in every network
    # How the generators change size: transposed (the paper's strided and transposed convolutions) or antialiased
    # (CUT's fixed blur filters, no checkerboard artefacts; networks/resample.py).
    resample: Resample = "transposed"
    gan_loss: Literal["lsgan", "vanilla"] = "lsgan"  # least squares (the paper) or cross-entropy
    lambda_cycle: float = 10.0  # weight of the cycle-consistency L1 loss (λ_cyc)
    lambda_identity: float = 0.5  # identity loss weight, relative to lambda_cycle (0 turns it off)
    pool_size: int = 50  # history of generated images shown to each discriminator (0: none)
    init_gain: float = 0.02  # weights drawn from N(0, init_gain)
    epochs: int = 200  # when train.steps is 0: 100 epochs constant + 100 epochs decay, as in the paper
    decay_from: float = 0.5  # fraction of training after which the learning rate decays linearly to zero
    # Augmentation of every image D_A and D_B see, real, pooled and generated alike (translate.augment): none (the
    # paper), diff (DiffAugment) or ada (its operations with an adaptive probability, one per discriminator).
    augment: Policy = "none"

    def __post_init__(self) -> None:
        # Sizes first, and bounded: a model file's config is built before its networks (translate.config's limits).
        check_size("generator_channels", self.generator_channels, 1, MAX_CHANNELS)
        check_size("discriminator_channels", self.discriminator_channels, 1, MAX_CHANNELS)
        check_size("num_blocks", self.num_blocks, 0, MAX_BLOCKS)
        check_size("discriminator_layers", self.discriminator_layers, 1, MAX_PATCHGAN_LAYERS)
        check_size("pool_size", self.pool_size, 0, MAX_POOL)
        if not 0 <= self.decay_from <= 1:
            raise ConfigError(f"decay_from must be in [0, 1], got {self.decay_from}")
        if self.data.image_size % 4:
            raise ConfigError(
                f"image_size must be a multiple of 4 for the ResNet generator, got {self.data.image_size}"
            )
        smallest = 3 * 2**self.discriminator_layers  # each PatchGAN output needs a 3×3 field after the strides
        if self.data.image_size < smallest:
            raise ConfigError(
                f"image_size {self.data.image_size} is too small for a {self.discriminator_layers}-layer PatchGAN "
                f"(needs >= {smallest}); use a larger --image-size or --set discriminator_layers=N"
            )
        if self.lambda_cycle < 0 or self.lambda_identity < 0 or self.epochs < 1:
            raise ConfigError("lambda_cycle and lambda_identity must be >= 0 and epochs >= 1")

    @property
    def resolved_num_blocks(self) -> int:
        if self.num_blocks is not None:
            return self.num_blocks
        return 9 if self.data.image_size >= 256 else 6


PRESETS: dict[str, dict[str, object]] = {
    # For tests and smoke runs: a few channels at 32 px, seconds per step on any CPU.
    "tiny": {"data.image_size": 32, "generator_channels": 8, "discriminator_channels": 8, "num_blocks": 1},
    # The paper's setting for 256×256 datasets such as horse2zebra.
    "paper": {},
    # The paper's 128×128 setting (e.g. Cityscapes): 6 residual blocks.
    "128px": {"data.image_size": 128},
    # A few minutes on a laptop CPU: 64 px, half-width networks and a short schedule, to see something quickly.
    # No flips (a mirrored glyph or text is not one; --flip turns them back on); the generators' moving average
    # (ramped up over the first images) is what gets applied, steadier than the last step's weights.
    "quick": {
        "data.image_size": 64,
        "data.flip": False,
        "generator_channels": 32,
        "discriminator_channels": 32,
        "train.ema_half_life": 200,
        "train.steps": 600,
        "train.log_every": 20,
        "train.preview_every": 100,
        "train.checkpoint_every": 200,
    },
    # Glyphs, line art and other single-ink images at the original code's 64 px budget (2,000 steps of batch 1, no
    # jitter, no flips; half-width generators, their moving average applied). No identity loss: it rewards leaving
    # a target-domain image unchanged, which pulls toward output = input; it exists to keep photographs' colours.
    # Held-out ink IoU without / with it on three font pairs: Ming→Kai 0.219 / 0.208, Ming→Hei 0.565 / 0.553,
    # Hei→Kai 0.196 / 0.174 (output = input 0.177, 0.428, 0.184; pretrained/README.md).
    "glyphs": {
        "data.image_size": 64,
        "data.load_size": 64,
        "data.flip": False,
        "generator_channels": 32,
        "train.ema_half_life": 200,
        "train.steps": 2000,
        "lambda_identity": 0.0,
    },
}

DIRECTIONS: dict[str, str] = {"a2b": "G_AB", "b2a": "G_BA"}  # direction -> generator's module name


def build_generator(config: CycleGANConfig, direction: str = "a2b") -> ResnetGenerator:
    """One generator of this recipe (both directions share the architecture), uninitialised."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: use a2b or b2a")
    return ResnetGenerator(
        config.data.channels,
        config.data.channels,
        base_channels=config.generator_channels,
        num_blocks=config.resolved_num_blocks,
        norm=config.norm,
        resample=config.resample,
    )


def make_data(
    config: CycleGANConfig,
    data: Path | None,
    *,
    domain_a: Path | None = None,
    domain_b: Path | None = None,
    console: Console | None = None,
) -> TrainingData:
    folders = unpaired_folders(data, domain_a, domain_b)
    train_a = scan_domain(folders.train_a, config.data.channels, console=console, label="domain A")
    train_b = scan_domain(folders.train_b, config.data.channels, console=console, label="domain B")
    channels = max(train_a.channels, train_b.channels)  # a grayscale domain beside a colour one becomes RGB
    train_a, train_b = train_a.with_channels(channels), train_b.with_channels(channels)
    # Previews use held-out images when the dataset has them (testA/testB), else the first training images.
    view_a = scan_domain(folders.test_a, channels, console=console) if folders.test_a else train_a
    view_b = scan_domain(folders.test_b, channels, console=console) if folders.test_b else train_b
    count = min(4, len(view_a), len(view_b))
    size = config.data.image_size
    dataset = UnpairedDataset(
        train_a,
        train_b,
        image_size=size,
        load_size=config.data.resolved_load_size,
        flip=config.data.flip,
        seed=config.train.seed,
    )
    preview = {"A": preview_images(view_a, count, size), "B": preview_images(view_b, count, size)}
    summary = f"{len(train_a)} A / {len(train_b)} B images, {'grayscale' if channels == 1 else 'RGB'}"
    held_out = (folders.test_a, folders.test_b) if folders.test_a and folders.test_b else None
    return TrainingData(dataset=dataset, preview=preview, summary=summary, channels=channels, held_out=held_out)


class CycleGAN:
    """Two generators and two discriminators trained with adversarial, cycle and identity losses."""

    name = "cyclegan"
    batches_per_step = 1
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generators G_AB, G_BA": ("G", "adv_AB", "adv_BA", "cyc_A", "cyc_B", "idt_A", "idt_B"),
        "discriminators D_A, D_B": ("D_A", "D_B"),
    }

    def __init__(self, config: CycleGANConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        # Initial weights depend on the seed alone; the global RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed)
            nets = [build_generator(config, "a2b"), build_generator(config, "b2a")]
            nets += [self._discriminator(), self._discriminator()]
            for net in nets:
                init_weights(net, config.init_gain)
        self.G_AB, self.G_BA, self.D_A, self.D_B = (engine.prepare(net) for net in nets)
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(
            itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()), lr=config.optim.lr, betas=betas
        )
        self.opt_D = engine.adam(
            itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=config.optim.lr, betas=betas
        )
        self.pool_A = ImagePool(config.pool_size, seed=config.train.seed + 1)  # fakes of domain A, for D_A
        self.pool_B = ImagePool(config.pool_size, seed=config.train.seed + 2)
        self.augment_A = Augment(config.augment).to(engine.device)  # before D_A
        self.augment_B = Augment(config.augment).to(engine.device)

    def _discriminator(self) -> PatchDiscriminator:
        c = self.config
        return PatchDiscriminator(
            c.data.channels,
            base_channels=c.discriminator_channels,
            num_layers=c.discriminator_layers,
            norm=c.norm,
        )

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """One generator update then one discriminator update, as in the paper's Algorithm."""
        c = self.config
        set_learning_rate(linear_decay(c.optim.lr, step, c.train.steps, c.decay_from), self.opt_G, self.opt_D)
        real_A, real_B = batch["A"], batch["B"]
        λ_cyc, λ_idt = c.lambda_cycle, c.lambda_cycle * c.lambda_identity

        # Generators: adversarial + cycle + identity losses; D is only a fixed critic here.
        with self.engine.frozen(self.D_A, self.D_B):
            with self.engine.autocast():
                fake_B = self.G_AB(real_A)  # G(x)
                rec_A = self.G_BA(fake_B)  # F(G(x)) ≈ x
                fake_A = self.G_BA(real_B)  # F(y)
                rec_B = self.G_AB(fake_A)  # G(F(y)) ≈ y
                adv_AB = generator_loss(c.gan_loss, self.D_B(self.augment_B(fake_B)))
                adv_BA = generator_loss(c.gan_loss, self.D_A(self.augment_A(fake_A)))
                cyc_A = F.l1_loss(rec_A, real_A) * λ_cyc
                cyc_B = F.l1_loss(rec_B, real_B) * λ_cyc
                loss_G = adv_AB + adv_BA + cyc_A + cyc_B
                if λ_idt > 0:  # G(y) ≈ y and F(x) ≈ x: keeps colours (paper, section 5.2)
                    idt_B = F.l1_loss(self.G_AB(real_B), real_B) * λ_idt
                    idt_A = F.l1_loss(self.G_BA(real_A), real_A) * λ_idt
                    loss_G = loss_G + idt_A + idt_B
            self.engine.optimize(loss_G, self.opt_G)

        # Discriminators: real vs a history of fakes; halved so D learns slower than G (paper, section 7.1).
        with self.engine.autocast():
            real_scores_A = self.D_A(self.augment_A(real_A))
            real_scores_B = self.D_B(self.augment_B(real_B))
            fake_scores_A = self.D_A(self.augment_A(self.pool_A.query(fake_A)))
            fake_scores_B = self.D_B(self.augment_B(self.pool_B.query(fake_B)))
            loss_D_A = 0.5 * sum(discriminator_loss(c.gan_loss, real_scores_A, fake_scores_A))
            loss_D_B = 0.5 * sum(discriminator_loss(c.gan_loss, real_scores_B, fake_scores_B))
        self.engine.optimize(loss_D_A + loss_D_B, self.opt_D)
        if c.augment == "ada":
            # ADA's overfitting signal is the sign of D's real outputs about the midpoint between its real and fake
            # targets: 0 for logits (vanilla), 0.5 for LSGAN's targets 1 and 0.
            midpoint = 0.5 if c.gan_loss == "lsgan" else 0.0
            self.augment_A.observe(real_scores_A - midpoint, real_A.shape[0])
            self.augment_B.observe(real_scores_B - midpoint, real_B.shape[0])

        metrics = {
            "G": loss_G,
            "D_A": loss_D_A,
            "D_B": loss_D_B,
            "adv_AB": adv_AB,
            "adv_BA": adv_BA,
            "cyc_A": cyc_A,
            "cyc_B": cyc_B,
        }
        if λ_idt > 0:
            metrics |= {"idt_A": idt_A, "idt_B": idt_B}
        if c.augment == "ada":
            metrics |= {"aug_p_A": self.augment_A.p.float(), "aug_p_B": self.augment_B.p.float()}
        return {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """Rows of a preview grid: x, G(x), F(G(x)), y, F(y), G(F(y)), each (N, C, H, W), in the paper's names."""
        G_AB, G_BA = self.engine.unwrap(self.G_AB), self.engine.unwrap(self.G_BA)  # no DDP or compile for this
        G_AB.eval()
        G_BA.eval()
        try:
            real_A, real_B = inputs["A"], inputs["B"]
            fake_B, fake_A = G_AB(real_A), G_BA(real_B)
            rows = [real_A, fake_B, G_BA(fake_B), real_B, fake_A, G_AB(fake_A)]
            return list(zip(("A", "G(A)", "F(G(A))", "B", "F(B)", "G(F(B))"), rows, strict=True))
        finally:
            G_AB.train()
            G_BA.train()

    def modules(self) -> dict[str, nn.Module]:
        nets = {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}
        return {name: self.engine.unwrap(net) for name, net in nets.items()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def extra_state(self) -> dict[str, Tensor]:
        """The history pools and ADA's p (with its running sum) per discriminator."""
        parts = {"pool_A": self.pool_A.state(), "pool_B": self.pool_B.state()}
        parts |= {"augment_A": self.augment_A.state_dict(), "augment_B": self.augment_B.state_dict()}
        return {f"{name}.{key}": value for name, state in parts.items() for key, value in state.items()}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        def part(name: str) -> dict[str, Tensor]:
            return {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(f"{name}.")}

        self.pool_A.load_state(part("pool_A"), self.engine.device)
        self.pool_B.load_state(part("pool_B"), self.engine.device)
        for name, augment in (("augment_A", self.augment_A), ("augment_B", self.augment_B)):
            if held := part(name):  # runs saved before augmentation existed start it afresh
                augment.load_state_dict(held)
