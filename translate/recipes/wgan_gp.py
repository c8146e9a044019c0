"""WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028), and the original WGAN's weight clipping (Arjovsky 2017).

The critic has no sigmoid and no batch norm (layer norm here); loss E[D(G(z))] − E[D(x)] plus
λ·E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂, λ = 10, computed in fp32; n_critic = 5 critic updates per
generator update; Adam(1e-4, β = (0, 0.9)). With `constraint=clip`: weights clipped to ±0.01 and RMSProp, as in
the original WGAN (the `clip` preset also sets its learning rate, 5e-5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor

from translate.config import MAX_CRITIC, OptimConfig, check_size
from translate.core.engine import Engine
from translate.errors import ConfigError
from translate.networks.dcgan import CriticNorm
from translate.recipes.generation import (
    TINY_PRESET,
    GeneratorConfig,
    GeneratorRecipe,
    build_discriminator,
    build_networks,
)

PRESETS: dict[str, dict[str, object]] = {
    "tiny": TINY_PRESET,
    "paper": {},
    "mnist": {"data.image_size": 32, "train.steps": 2000},
    "clip": {"constraint": "clip", "optim.lr": 5e-5},
}


@dataclass(frozen=True)
class WGANGPConfig(GeneratorConfig):
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.0, beta2=0.9))
    n_critic: int = 5  # critic updates (each on its own batch) per generator update
    lambda_gp: float = 10.0  # weight of the gradient penalty
    critic_norm: CriticNorm = "layer"  # normalisation in the critic (no batch norm with a per-sample penalty)
    constraint: Literal["gp", "clip"] = "gp"  # gradient penalty (WGAN-GP) or weight clipping (the original WGAN)
    clip_value: float = 0.01  # weight clipping bound, with constraint=clip

    def __post_init__(self) -> None:
        super().__post_init__()
        check_size("n_critic", self.n_critic, 1, MAX_CRITIC)  # the loader delivers n_critic batches per step
        if self.lambda_gp < 0 or self.clip_value <= 0:
            raise ConfigError("lambda_gp must be >= 0 and clip_value > 0")
        if self.constraint == "gp" and self.critic_norm == "batch":
            raise ConfigError("the gradient penalty is per sample: use critic_norm=layer or none, not batch")


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """E[(‖∇_x̂ D(x̂)‖₂ − 1)²], x̂ = εx + (1 − ε)x̃ with ε ~ U[0, 1] per sample; always in fp32."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
    with torch.autocast(real.device.type, enabled=False):
        scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class WGANGP(GeneratorRecipe):
    """Generator and critic; one train_step = n_critic critic updates (one data batch each) + one G update."""

    name = "wgan-gp"
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {"generator G": ("G",), "critic D": ("D", "W", "GP")}

    def __init__(self, config: WGANGPConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        self.batches_per_step = config.n_critic
        self.G, self.D = build_networks(
            config,
            engine,
            lambda: build_discriminator(config, norm=config.critic_norm),
        )
        o = config.optim
        if config.constraint == "clip":
            self.opt_G = torch.optim.RMSprop(self.G.parameters(), lr=config.lr_G)
            self.opt_D = torch.optim.RMSprop(self.D.parameters(), lr=o.lr)
        else:
            self.opt_G = engine.adam(self.G.parameters(), lr=config.lr_G, betas=(o.beta1, o.beta2))
            self.opt_D = engine.adam(self.D.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        self.setup_techniques()

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        c = self.config
        for real in batch["image"].chunk(c.n_critic):  # the loader delivers n_critic batches at once
            z = torch.randn(real.shape[0], c.latent_dim, device=real.device)
            # The critic sees real and generated images augmented alike; the penalty is on their interpolates.
            with self.engine.autocast():
                real_seen, fake_seen = self.augment(real), self.augment(self.G(z).detach())
                real_scores = self.D(real_seen)
                wasserstein = real_scores.mean() - self.D(fake_seen).mean()  # estimate of W(P_r, P_g)
            loss_D = -wasserstein + self.discriminator_extra()
            if c.constraint == "gp":
                critic = self.engine.unwrap(self.D)
                penalty = gradient_penalty(critic, real_seen, fake_seen)  # double backward: no compile
                loss_D = loss_D + c.lambda_gp * penalty
            self.engine.optimize(loss_D, self.opt_D)
            if c.constraint == "clip":
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-c.clip_value, c.clip_value)

        z = torch.randn(real.shape[0], c.latent_dim, device=real.device)
        with self.engine.frozen(self.D):  # G's step needs gradients through D, not for D's weights
            with self.engine.autocast():
                fake = self.G(z)
                loss_G = self.generator_objective(-self.D(self.augment(fake)).mean(), real, fake)
            self.engine.optimize(loss_G, self.opt_G)
        logged = self.after_step(real_scores)
        metrics = {"G": loss_G.detach(), "D": loss_D.detach(), "W": wasserstein.detach(), **logged}
        if c.constraint == "gp":
            metrics["GP"] = penalty.detach()
        return metrics
