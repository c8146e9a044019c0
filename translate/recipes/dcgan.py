"""DCGAN (Radford, Metz, Chintala 2015, arXiv:1511.06434): unconditional image generation.

The paper's architecture rules and settings: transposed convolutions in G, strided convolutions in D, batch norm
except on G's output and D's input, ReLU/Tanh in G, LeakyReLU 0.2 in D, weights N(0, 0.02), Adam(2e-4, β1 0.5),
minibatch 128, z of 100 dimensions; the non-saturating loss (G maximises log D(G(z))).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from translate.core.engine import Engine
from translate.errors import ConfigError
from translate.losses import discriminator_loss, generator_loss
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
    "paper": {},  # 64 px, batch 128, as in the paper
    "mnist": {"data.image_size": 32, "train.batch_size": 64, "train.steps": 3000},
}


@dataclass(frozen=True)
class DCGANConfig(GeneratorConfig):
    gan_loss: Literal["vanilla", "lsgan", "hinge"] = "vanilla"  # the non-saturating loss (the paper), or another
    # Batch norm (the paper), or spectral normalisation (Miyato et al. 2018), the usual partner of the hinge loss.
    discriminator_norm: CriticNorm = "batch"


class DCGAN(GeneratorRecipe):
    """One generator, one discriminator; each step updates D on real and fake, then G."""

    name = "dcgan"
    batches_per_step = 1

    def __init__(self, config: DCGANConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        self.G, self.D = build_networks(
            config, engine, lambda: build_discriminator(config, norm=config.discriminator_norm)
        )
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(self.G.parameters(), lr=config.lr_G, betas=betas)
        self.opt_D = engine.adam(self.D.parameters(), lr=config.optim.lr, betas=betas)
        self.setup_techniques()

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        c = self.config
        real = batch["image"]
        z = torch.randn(real.shape[0], c.latent_dim, device=real.device)

        # D: maximise log D(x) + log(1 - D(G(z))); real and fake in separate batches (batch norm statistics).
        # Both are augmented alike (self.augment: identity unless augmentation is on).
        with self.engine.autocast():
            fake = self.G(z)
            real_scores = self.D(self.augment(real))
            loss_real, loss_fake = discriminator_loss(
                c.gan_loss, real_scores, self.D(self.augment(fake.detach())), c.real_label
            )
            loss_D = loss_real + loss_fake + self.discriminator_extra()
        self.engine.optimize(loss_D, self.opt_D)

        # G: the non-saturating loss, through the just-updated D.
        with self.engine.frozen(self.D):  # gradients through D, not for D's weights
            with self.engine.autocast():
                adversarial = generator_loss(c.gan_loss, self.D(self.augment(fake)))
                loss_G = self.generator_objective(adversarial, real, fake)
            self.engine.optimize(loss_G, self.opt_G)
        logged = self.after_step(real_scores)
        loss_parts = {"D_real": loss_real.detach(), "D_fake": loss_fake.detach()}
        return {"G": loss_G.detach(), "D": loss_D.detach(), **loss_parts, **logged}
