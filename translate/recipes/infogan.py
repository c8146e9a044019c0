"""InfoGAN (Chen et al. 2016, arXiv:1606.03657): generation with interpretable latent codes, learned unsupervised.

The generator takes noise z and codes c; an auxiliary network Q(c|x), a head on the discriminator's body, predicts
c from G(z, c). The variational lower bound of the mutual information,
L_I(G, Q) = E[log Q(c | G(z, c))] + H(c) ≤ I(c; G(z, c)), is maximised by both G and Q with weight λ:
min_{G,Q} max_D V(D, G) − λ·L_I(G, Q) (the paper's eq. 6). H(c) is a constant, so each network adds λ times Q's
negative log-likelihood of the codes it was asked for: the cross-entropy for categorical codes, and for
continuous ones a factored Gaussian's, whose standard deviation is fixed at 1 by default (then the term is
½(c − μ)² + ½·log 2π), as in the authors' MNIST experiment (openai/InfoGAN, launchers/run_mnist_exp.py:
`Uniform(1, fix_std=True)`): a learned σ lets Q lower its loss by narrowing σ on easy codes, which changes the
term's weight as training goes; `continuous_std=learned` predicts log σ too.

The paper's MNIST settings (its appendix C and the authors' code): one categorical code Cat(K = 10), two
continuous codes Unif(−1, 1), 62 noise variables; λ = 1; Adam with β1 = 0.5, learning rate 2e-4 for D and 1e-3
for G; batch norm (DCGAN's networks); batch 128. Q's head and D's shared body are one network and one optimiser
(2e-4), as in the authors' code, where Q's layers live in D's variable scope (`d_net`) and D's trainer minimises
D's loss minus λ·L_I. The non-saturating GAN loss, as the authors' code.

Augmentation (DiffAugment, ADA: translate.augment) changes what D judges, not what Q reads: Q sees the generated
images as they are, in a second pass of the shared body when augmentation is on. Q is fit only on generated
images, of which there is no shortage to overfit, and a colour shift, translation or cutout can erase exactly what
a code encodes (measured on the tiny preset, 16 images, batch 16: with DiffAugment before Q, Q's cross-entropy
stayed at chance, 2.3, for 40 steps; with Q reading the images as generated it fell to 1.6).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from translate.core.engine import Engine
from translate.description import GeneratorInput
from translate.errors import ConfigError
from translate.losses import discriminator_loss, generator_loss
from translate.networks.infogan import InfoGANDiscriminator, InfoGANGenerator, code_names
from translate.recipes import generation
from translate.recipes.base import TrainingData
from translate.recipes.generation import DIRECTIONS, TINY_PRESET, GeneratorConfig, GeneratorRecipe, build_networks

PRESETS: dict[str, dict[str, object]] = {
    "tiny": TINY_PRESET,
    "paper": {},  # 64 px, batch 128
    # MNIST at 32 px, batch 128 (the authors' code); 5,000 steps is their 50 "epochs" of 100 updates. No augmentation,
    # as in the paper, although the 4,000-digit sets here are small enough for `auto` to choose DiffAugment: at 1,800
    # steps (seed 0) DiffAugment scored FID 183.5 and purity 0.55, none FID 86.8 and purity 0.585 (pretrained/).
    # Half DCGAN's widths: a step costs a third, and in equal time (3,000 steps against 1,000, seed 0) the narrow
    # networks reached FID 62.3 where the wide ones reached 130.1 (pretrained/README.md).
    "mnist": {
        "data.image_size": 32,
        "train.steps": 5000,
        "augment": "none",
        "generator_channels": 32,
        "discriminator_channels": 32,
    },
}
MAX_CATEGORIES = 1024  # values of one categorical code (the paper uses 10)
MAX_CODES = 64  # categorical codes, and continuous codes (the paper uses 1 and 2, up to 5 continuous on faces)
PREVIEW_COLUMNS = 8
PREVIEW_ROWS = 16  # rows of a preview grid, one per value of the first categorical code (up to this many)
_CODE = re.compile(r"(cat|cont)(\d+)")


def parse_codes(text: str) -> tuple[tuple[int, ...], int]:
    """ "cat10,cont2" → ((10,), 2): the sizes of the categorical codes, and how many continuous codes there are."""
    categorical: list[int] = []
    continuous = 0
    for item in (part.strip() for part in text.split(",")):
        found = _CODE.fullmatch(item)
        if found is None:
            raise ConfigError(
                f"codes: cannot read {item!r} in {text!r}; write catK (a categorical code of K values) and contN "
                "(N continuous codes), e.g. cat10,cont2"
            )
        kind, count = found.group(1), int(found.group(2))
        if kind == "cat":
            if not 2 <= count <= MAX_CATEGORIES:
                raise ConfigError(f"codes: a categorical code takes 2 to {MAX_CATEGORIES} values, got {item}")
            categorical.append(count)
        else:
            continuous += count
    if not categorical and not continuous:
        raise ConfigError("codes: name at least one code, e.g. cat10,cont2")
    if len(categorical) > MAX_CODES or continuous > MAX_CODES:
        raise ConfigError(f"codes: at most {MAX_CODES} categorical and {MAX_CODES} continuous codes")
    return tuple(categorical), continuous


@dataclass(frozen=True)
class InfoGANConfig(GeneratorConfig):
    latent_dim: int = 62  # InfoGAN (MNIST): 62 noise variables z, besides the codes
    # The latent codes c: catK is a categorical code of K values, contN N continuous codes Unif(-1, 1); the paper's
    # MNIST setting is cat10,cont2 (digit class; rotation and width).
    codes: str = "cat10,cont2"
    lambda_info: float = 1.0  # λ, the weight of the mutual-information bound for G and Q (the paper: 1 on MNIST)
    # λ of the continuous codes relative to lambda_info (the paper uses smaller ones for some continuous codes)
    continuous_weight: float = 1.0
    # Q's Gaussian for continuous codes: fixed (σ = 1, the authors' MNIST code) or learned (Q also predicts log σ)
    continuous_std: Literal["fixed", "learned"] = "fixed"
    generator_lr: float = 1e-3  # InfoGAN: Adam 1e-3 for G (optim.lr, 2e-4, is D's and Q's); 0: optim.lr
    gan_loss: Literal["vanilla", "lsgan", "hinge"] = "vanilla"  # the non-saturating loss (the paper), or another

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_codes(self.codes)
        if self.lambda_info < 0 or self.continuous_weight < 0:
            raise ConfigError("lambda_info and continuous_weight must be >= 0")

    @property
    def categorical(self) -> tuple[int, ...]:
        return parse_codes(self.codes)[0]

    @property
    def continuous(self) -> int:
        return parse_codes(self.codes)[1]


def build_generator(config: InfoGANConfig, direction: str = "generate") -> InfoGANGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a generator has only 'generate'")
    return InfoGANGenerator(
        config.latent_dim,
        config.data.channels or 3,
        config.data.image_size,
        categorical=config.categorical,
        continuous=config.continuous,
        base_channels=config.generator_channels,
    )


def build_discriminator(config: InfoGANConfig) -> InfoGANDiscriminator:
    """D and Q: one convolutional body, two heads."""
    assert config.data.channels is not None
    return InfoGANDiscriminator(
        config.data.channels,
        config.data.image_size,
        categorical=config.categorical,
        continuous=config.continuous,
        learned_std=config.continuous_std == "learned",
        base_channels=config.discriminator_channels,
        minibatch_std=config.minibatch_std,
        minibatch_kernels=config.minibatch_kernels,
    )


def generator_inputs(config: InfoGANConfig) -> tuple[GeneratorInput, ...]:
    """z ~ N(0, I) of latent_dim, then the codes by name (InfoGANGenerator's arguments)."""
    cat_names, cont_names = code_names(config.categorical, config.continuous)
    cats = [
        GeneratorInput(name, "categorical", (), tuple(str(i) for i in range(k)))
        for name, k in zip(cat_names, config.categorical, strict=True)
    ]
    conts = [GeneratorInput(name, "uniform") for name in cont_names]
    return (GeneratorInput("z", "normal", (config.latent_dim,)), *cats, *conts)


def make_data(config: InfoGANConfig, data: Any, **options: Any) -> TrainingData:
    """Every image under `data`, recursively (sub-folders are not classes: the codes are learned unsupervised)."""
    training = generation.make_data(config, data, **options)
    return dataclasses.replace(training, preview=preview_inputs(config))


def preview_inputs(config: InfoGANConfig) -> dict[str, Tensor]:
    """Fixed inputs for previews: one row per value of the first categorical code (up to PREVIEW_ROWS), and in
    each column the same z and other codes, so a column shows what the categorical code alone changes."""
    generator = torch.Generator().manual_seed(config.train.seed + 12345)
    cat_names, cont_names = code_names(config.categorical, config.continuous)
    rows = min(config.categorical[0], PREVIEW_ROWS) if cat_names else PREVIEW_COLUMNS

    def columns(values: Tensor) -> Tensor:  # one value per column, the same in every row
        return values.repeat(rows, *([1] * (values.dim() - 1)))

    inputs = {"z": columns(torch.randn(PREVIEW_COLUMNS, config.latent_dim, generator=generator))}
    for i, (name, k) in enumerate(zip(cat_names, config.categorical, strict=True)):
        drawn = torch.randint(k, (PREVIEW_COLUMNS,), generator=generator)
        inputs[name] = torch.arange(rows).repeat_interleave(PREVIEW_COLUMNS) if i == 0 else columns(drawn)
    for name in cont_names:
        inputs[name] = columns(torch.rand(PREVIEW_COLUMNS, generator=generator) * 2 - 1)
    return inputs


class InfoGAN(GeneratorRecipe):
    """Generator, and discriminator with Q's head; each step updates D and Q together, then G."""

    name = "infogan"
    batches_per_step = 1
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator G": ("G",),
        "discriminator D": ("D", "D_real", "D_fake"),
        "information Q (−log Q(c|x))": ("Q_cat", "Q_cont"),
    }

    def __init__(self, config: InfoGANConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        self.cat_names, self.cont_names = code_names(config.categorical, config.continuous)
        self.G, self.D = build_networks(  # DCGAN's N(0, 0.02) init
            config, engine, lambda: build_discriminator(config), lambda: build_generator(config)
        )
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(self.G.parameters(), lr=config.lr_G, betas=betas)
        self.opt_D = engine.adam(self.D.parameters(), lr=config.optim.lr, betas=betas)  # D's body and heads, Q's too
        self.setup_techniques()

    def sample_codes(self, n: int, device: torch.device) -> dict[str, Tensor]:
        """c from its prior: uniform categories (N,) int64, and Unif(−1, 1) values (N,)."""
        codes = {
            name: torch.randint(k, (n,), device=device)
            for name, k in zip(self.cat_names, self.config.categorical, strict=True)
        }
        return codes | {name: torch.rand(n, device=device) * 2 - 1 for name in self.cont_names}

    def information(self, q: Tensor, codes: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """−log Q(c|x) averaged over the batch: (categorical codes' cross-entropy, continuous codes' Gaussian
        negative log-likelihood), each summed over its codes; in fp32."""
        logits, mean, log_std = self.engine.unwrap(self.D).posterior(q.float())
        zero = q.new_zeros((), dtype=torch.float32)
        cat = sum((F.cross_entropy(lg, codes[n]) for lg, n in zip(logits, self.cat_names, strict=True)), zero)
        if not self.cont_names:
            return cat, zero
        c = torch.stack([codes[name] for name in self.cont_names], dim=1).float()  # (N, continuous)
        log_std = torch.zeros_like(mean) if log_std is None else log_std
        nll = 0.5 * ((c - mean) * torch.exp(-log_std)).pow(2) + log_std + 0.5 * math.log(2 * math.pi)
        return cat, nll.sum(dim=1).mean()

    def judge(self, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D's scores of the (augmented) fakes, and Q's parameters from the fakes as generated."""
        scores, q = self.D(self.augment(fake))
        if self.augment.policy != "none":
            _, q = self.D(fake)
        return scores, q

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        cfg = self.config
        real = batch["image"]
        n = real.shape[0]
        z = torch.randn(n, cfg.latent_dim, device=real.device)
        c = self.sample_codes(n, real.device)

        # D and Q: D's GAN loss on real and fake (separate batches, for batch norm), plus λ·(−log Q(c|G(z, c))).
        with self.engine.autocast():
            fake = self.G(z, **c)
            real_scores, _ = self.D(self.augment(real))
            fake_scores, q = self.judge(fake.detach())
            loss_real, loss_fake = discriminator_loss(cfg.gan_loss, real_scores, fake_scores, cfg.real_label)
            q_cat, q_cont = self.information(q, c)
            loss_Q = cfg.lambda_info * (q_cat + cfg.continuous_weight * q_cont)
            loss_D = loss_real + loss_fake + loss_Q + self.discriminator_extra()
        self.engine.optimize(loss_D, self.opt_D)

        # G: fool D, and make its codes recoverable by Q (the same λ·(−log Q)), through the just-updated D and Q.
        with self.engine.frozen(self.D):  # gradients through D and Q, not for their weights
            with self.engine.autocast():
                scores, q = self.judge(fake)
                adversarial = generator_loss(cfg.gan_loss, scores)
                g_cat, g_cont = self.information(q, c)
                info = cfg.lambda_info * (g_cat + cfg.continuous_weight * g_cont)
                loss_G = self.generator_objective(adversarial, real, fake) + info
            self.engine.optimize(loss_G, self.opt_G)
        logged = self.after_step(real_scores)
        metrics = {"G": loss_G.detach(), "D": loss_D.detach(), "D_real": loss_real.detach()}
        metrics["D_fake"] = loss_fake.detach()
        if self.cat_names:
            metrics["Q_cat"] = q_cat.detach()
        if self.cont_names:
            metrics["Q_cont"] = q_cont.detach()
        return metrics | logged

    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """The preview grid (preview_inputs), rows labelled with the first categorical code's value."""
        G = self.engine.unwrap(self.G)
        G.eval()
        try:
            with torch.no_grad():
                images = G(inputs["z"], **{name: inputs[name] for name in (*self.cat_names, *self.cont_names)})
        finally:
            G.train()
        rows = images.split(PREVIEW_COLUMNS)
        if not self.cat_names:
            return [("", row) for row in rows]
        name = self.cat_names[0]
        values = inputs[name].split(PREVIEW_COLUMNS)
        return [(f"{name}={int(value[0])}", row) for value, row in zip(values, rows, strict=True)]
