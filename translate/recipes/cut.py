"""Contrastive unpaired translation: CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020, arXiv:2007.15651).

One generator G: A → B and one discriminator D_B, no second generator and no cycle. What keeps G(x) about x is
PatchNCE: a patch of G(x), encoded by G's own encoder, must be closer to the patch of x at the same place than to
the other patches of x (InfoNCE over 256 patches a layer, at five depths of the encoder, through a small MLP F per
depth). CUT adds the same loss between y and G(y) for real B images (the identity term, a PatchNCE version of
CycleGAN's identity loss); FastCUT drops it, weights PatchNCE ten times more and makes G flip-equivariant instead.

Defaults are the authors' (their code's options): the ResNet-9 generator with anti-aliased resampling, a 70×70
PatchGAN, LSGAN, no image pool, Adam (2e-4, β 0.5/0.999), Xavier initialisation with gain 0.02, batch 1, and the
CycleGAN schedule (CUT 200 + 200 epochs, FastCUT 150 + 50). F is built when the recipe is (not lazily at the first
batch, as the reference does), so resume and DDP see it from step 0; it is trained with G and never exported.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.config import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_PATCHGAN_LAYERS,
    DataConfig,
    OptimConfig,
    TrainConfig,
    check_size,
)
from translate.core.engine import Engine
from translate.errors import ConfigError
from translate.losses import discriminator_loss, generator_loss
from translate.networks.patchgan import PatchDiscriminator
from translate.networks.resnet import Resample, ResnetGenerator
from translate.recipes.base import linear_decay, set_learning_rate

MAX_PATCHES = 4096  # patches sampled per layer and image (the InfoNCE matrix is patches², per image)


@dataclass(frozen=True)
class CUTConfig:
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generator_channels: int = 64  # ngf
    discriminator_channels: int = 64  # ndf
    num_blocks: int = 9  # residual blocks (resnet_9blocks at every size, as the authors train)
    discriminator_layers: int = 3  # 3 strided layers: 70×70 patches
    norm: Literal["instance", "batch"] = "instance"  # normalisation in G and D
    resample: Resample = "antialiased"  # the authors' anti-aliased down/upsampling (networks/resample.py)
    gan_loss: Literal["lsgan", "vanilla"] = "lsgan"  # least squares, as the authors
    lambda_gan: float = 1.0  # weight of G's adversarial loss (λ_GAN)
    lambda_nce: float = 1.0  # weight of PatchNCE (λ_NCE): 1 for CUT, 10 for FastCUT
    nce_identity: bool = True  # PatchNCE also between y and G(y) for real B (CUT: yes; FastCUT: no)
    flip_equivariance: bool = False  # FastCUT: G's input flipped at random, its encoding flipped back for PatchNCE
    num_patches: int = 256  # patches sampled per layer and image
    nce_temperature: float = 0.07  # τ of InfoNCE
    projection_channels: int = 256  # units of F's two-layer MLPs, the dimension the patches are compared in
    init_gain: float = 0.02  # Xavier-normal initialisation with this gain
    epochs: int = 400  # when train.steps is 0: CUT's 200 epochs constant + 200 epochs decay
    decay_from: float = 0.5  # fraction of training after which the learning rate decays linearly to zero

    def __post_init__(self) -> None:
        check_size("generator_channels", self.generator_channels, 1, MAX_CHANNELS)
        check_size("discriminator_channels", self.discriminator_channels, 1, MAX_CHANNELS)
        check_size("num_blocks", self.num_blocks, 1, MAX_BLOCKS)
        check_size("discriminator_layers", self.discriminator_layers, 1, MAX_PATCHGAN_LAYERS)
        check_size("num_patches", self.num_patches, 1, MAX_PATCHES)
        check_size("projection_channels", self.projection_channels, 1, MAX_CHANNELS)
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
        if not 0 <= self.decay_from <= 1:
            raise ConfigError(f"decay_from must be in [0, 1], got {self.decay_from}")
        if self.lambda_gan < 0 or self.lambda_nce < 0 or self.epochs < 1:
            raise ConfigError("lambda_gan and lambda_nce must be >= 0 and epochs >= 1")
        if not self.nce_temperature > 0:
            raise ConfigError(f"nce_temperature must be > 0, got {self.nce_temperature}")


PRESETS: dict[str, dict[str, object]] = {
    # For tests and smoke runs: a few channels and patches at 32 px.
    "tiny": {
        "data.image_size": 32,
        "generator_channels": 8,
        "discriminator_channels": 8,
        "num_blocks": 1,
        "num_patches": 16,
        "projection_channels": 16,
    },
    # CUT as published: λ_NCE 1 with the identity term, 200 + 200 epochs (the defaults).
    "cut": {},
    # FastCUT: λ_NCE 10, no identity term, flip-equivariance, 150 + 50 epochs (the authors' FastCUT options).
    "fastcut": {
        "lambda_nce": 10.0,
        "nce_identity": False,
        "flip_equivariance": True,
        "epochs": 200,
        "decay_from": 0.75,
    },
}

DIRECTIONS: dict[str, str] = {"a2b": "G"}  # one generator: A → B


def build_generator(config: CUTConfig, direction: str = "a2b") -> ResnetGenerator:
    """The generator G: A → B, uninitialised."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a CUT model translates a2b only")
    return ResnetGenerator(
        config.data.channels,
        config.data.channels,
        base_channels=config.generator_channels,
        num_blocks=config.num_blocks,
        norm=config.norm,
        resample=config.resample,
    )


class PatchProjections(nn.Module):
    """F: one two-layer MLP (C → units → units) per encoder layer, applied to sampled patches and L2-normalised.

    Patches are the same places in every image of a batch, as the authors sample them: `sample` returns the places
    so that the query (G(x)'s features) is read where the key (x's) was.
    """

    def __init__(self, channels: tuple[int, ...], units: int) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, units), nn.ReLU(inplace=True), nn.Linear(units, units)) for c in channels
        )

    def forward(
        self, features: list[Tensor], num_patches: int, places: list[Tensor] | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per layer: (N · P, units) unit vectors of P patches of each image (N, C, H, W), and the places used."""
        out, used = [], []
        for i, (feature, mlp) in enumerate(zip(features, self.mlps, strict=True)):
            flat = feature.flatten(2).transpose(1, 2)  # (N, H·W, C)
            sampled = places is None  # the keys' layer: new places; the queries': the keys' places
            where = torch.randperm(flat.shape[1], device=flat.device)[:num_patches] if sampled else places[i]
            patches = flat[:, where].flatten(0, 1)  # (N · P, C)
            out.append(F.normalize(mlp(patches), dim=1))
            used.append(where)
        return out, used


def patch_nce(query: Tensor, key: Tensor, images: int, temperature: float) -> Tensor:
    """InfoNCE of each query patch against the key patch at its place (positive) and the other patches of the same
    image (negatives): cross-entropy of the positive among P logits. query, key: (N · P, D) unit vectors."""
    query, key = query.float(), key.float().detach()  # the keys are targets; logits in fp32 under autocast
    positive = (query * key).sum(dim=1, keepdim=True)  # (N·P, 1)
    q, k = query.view(images, -1, query.shape[1]), key.view(images, -1, key.shape[1])
    negative = torch.bmm(q, k.transpose(1, 2))  # (N, P, P): every patch against every patch of its image
    same = torch.eye(q.shape[1], dtype=torch.bool, device=q.device)[None]
    negative = negative.masked_fill(same, -10.0).flatten(0, 1)  # the positive is not its own negative
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def xavier_init(module: nn.Module, gain: float) -> None:
    """Xavier-normal weights with `gain`, zero biases (the authors' `init_type xavier`); fixed filters untouched."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and isinstance(m.weight, nn.Parameter):
            nn.init.xavier_normal_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CUT:
    """G: A → B, D_B, and the patch projections F, trained with the adversarial and PatchNCE losses."""

    name = "cut"
    batches_per_step = 1
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator G and projections F": ("G", "adv", "nce", "nce_idt"),
        "discriminator D_B": ("D_B",),
    }

    def __init__(self, config: CUTConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
            torch.manual_seed(config.train.seed)
            G = build_generator(config)
            D = PatchDiscriminator(
                config.data.channels,
                base_channels=config.discriminator_channels,
                num_layers=config.discriminator_layers,
                norm=config.norm,
            )
            projections = PatchProjections(G.feature_channels, config.projection_channels)
            for net in (G, D, projections):
                xavier_init(net, config.init_gain)
        self.layers = G.feature_layers
        self.G, self.D_B, self.F = (engine.prepare(net) for net in (G, D, projections))
        betas = (config.optim.beta1, config.optim.beta2)
        # One Adam over G and F is the authors' two (Adam is per parameter, and both use the same settings).
        generator_and_projections = itertools.chain(self.G.parameters(), self.F.parameters())
        self.opt_G = engine.adam(generator_and_projections, lr=config.optim.lr, betas=betas)
        self.opt_D = engine.adam(self.D_B.parameters(), lr=config.optim.lr, betas=betas)

    def nce_loss(self, source: Tensor, target: Tensor, flipped: bool = False) -> Tensor:
        """PatchNCE between an image and its translation, averaged over the encoder layers: the patches of
        G.encode(target) (queries) against those of G.encode(source) at the same places (keys)."""
        c = self.config
        query_features = self.G(target, encode=self.layers)
        if flipped:  # target came from the flipped source: flip its encoding back to line up with the source's
            query_features = [torch.flip(f, dims=[3]) for f in query_features]
        keys, places = self.F(self.G(source, encode=self.layers), c.num_patches)
        queries, _ = self.F(query_features, c.num_patches, places)
        images = source.shape[0]
        losses = [patch_nce(q, k, images, c.nce_temperature) for q, k in zip(queries, keys, strict=True)]
        return torch.stack(losses).mean()

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """The discriminator update, then G and F together (the authors' order)."""
        c = self.config
        set_learning_rate(linear_decay(c.optim.lr, step, c.train.steps, c.decay_from), self.opt_G, self.opt_D)
        real_A, real_B = batch["A"], batch["B"]
        flipped = c.flip_equivariance and bool(torch.rand(()) < 0.5)
        with self.engine.autocast():
            source = torch.cat([real_A, real_B]) if c.nce_identity else real_A  # one pass: instance norm per image
            translated = self.G(torch.flip(source, dims=[3]) if flipped else source)
            fake_B = translated[: len(real_A)]
            idt_B = translated[len(real_A) :] if c.nce_identity else None

        # D_B: real B against G(x).
        with self.engine.autocast():
            loss_D_real, loss_D_fake = discriminator_loss(c.gan_loss, self.D_B(real_B), self.D_B(fake_B.detach()))
            loss_D = 0.5 * (loss_D_real + loss_D_fake)
        self.engine.optimize(loss_D, self.opt_D)

        # G and F: fool D_B, and keep each patch of G(x) about the patch of x at the same place.
        with self.engine.frozen(self.D_B), self.engine.autocast():
            adv = generator_loss(c.gan_loss, self.D_B(fake_B)) * c.lambda_gan
            nce = self.nce_loss(real_A, fake_B, flipped) * c.lambda_nce
            loss_G = adv + nce
            if idt_B is not None:  # the identity term: PatchNCE(y, G(y)); the two terms are averaged
                nce_idt = self.nce_loss(real_B, idt_B, flipped) * c.lambda_nce
                loss_G = adv + 0.5 * (nce + nce_idt)
        self.engine.optimize(loss_G, self.opt_G)

        metrics = {"G": loss_G, "D_B": loss_D, "adv": adv, "nce": nce}
        if idt_B is not None:
            metrics["nce_idt"] = nce_idt
        return {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """Rows of a preview grid: x, G(x), y, G(y) (G(y) ≈ y is what the identity term asks)."""
        G = self.engine.unwrap(self.G)
        G.eval()
        try:
            real_A, real_B = inputs["A"], inputs["B"]
            return [("A", real_A), ("G(A)", G(real_A)), ("B", real_B), ("G(B)", G(real_B))]
        finally:
            G.train()

    def modules(self) -> dict[str, nn.Module]:
        return {name: self.engine.unwrap(net) for name, net in (("G", self.G), ("D_B", self.D_B), ("F", self.F))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def extra_state(self) -> dict[str, Tensor]:
        return {}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        """CUT keeps no state besides its networks and optimisers."""
