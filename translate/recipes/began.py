"""BEGAN (Berthelot, Schumm, Metz 2017, arXiv:1703.10717): an auto-encoder discriminator held at an equilibrium.

D is an auto-encoder and its loss the L1 reconstruction error L(v) = |v − D(v)| (the mean over pixels):

    L_D = L(x) − k_t·L(G(z))        L_G = L(G(z))
    k_{t+1} = clip(k_t + λ_k·(γ·L(x) − L(G(z))), 0, 1),   k_0 = 0, λ_k = 0.001
    M_global = L(x) + |γ·L(x) − L(G(z))|

γ, the diversity ratio E[L(G(z))] / E[L(x)] the control aims at, is 0.5 by default (0.3–0.7 in the paper). The
paper updates both networks from one loss evaluation; here D steps first and G then steps through the updated D,
as in the other recipes, and k_t and M_global use L(x) and L(G(z)) from D's step (one D, before its update), which
are also the values logged as L_real and L_fake. Adam at 1e-4 (§4.1: an initial rate in [5e-5, 1e-4]), "decaying by
a factor of 2 when the measure of convergence stalls", made a rule here: `StallDecay`. The paper gives no β; (0.5,
0.999) are those of the common re-implementations (carpedm20/BEGAN-tensorflow).

Deviations, each for the deploy path's sake: z ~ N(0, I) rather than the paper's U(−1, 1) (samplers and slerp walks
draw Gaussian latents), and PyTorch's default initialisation (the paper names none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from translate.config import DataConfig, OptimConfig, TrainConfig
from translate.core.engine import Engine
from translate.description import GeneratorInput
from translate.errors import ConfigError
from translate.networks.began import BEGANDiscriminator, BEGANGenerator
from translate.recipes.base import set_learning_rate
from translate.recipes.generation import DIRECTIONS, TINY_PRESET, GeneratorConfig, GeneratorRecipe, build_networks

PRESETS: dict[str, dict[str, object]] = {
    # The stall rule over windows of 2 steps, so that a few test steps cut the rate and resume across it.
    "tiny": {**TINY_PRESET, "lr_window": 2, "lr_patience": 1},
    "paper": {},  # 64 px, h = n = 64
    "mnist": {"data.image_size": 32, "train.batch_size": 64, "train.steps": 5000, "lr_window": 500},
}


@dataclass(frozen=True)
class BEGANConfig(GeneratorConfig):
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=64, flip=False))
    # §4.1: Adam with an initial rate in [5e-5, 1e-4]; β as in the common re-implementations (the paper gives none).
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.5, beta2=0.999))
    # Batch 16 (the re-implementations'; the paper gives none); generator EMA with a half-life of 10k images.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16, ema_half_life=10_000))
    latent_dim: int = 64  # h = N_z = 64 (§4.1): D's embedding and the size of z
    generator_channels: int = 64  # n, the filters of G's convolutions (the paper: 64 or 128)
    discriminator_channels: int = 64  # n of D's auto-encoder (its encoder grows n, 2n, 3n, ... per sub-sampling)
    init_gain: float = 0.0  # weights N(0, init_gain); 0: PyTorch's default initialisation (the paper names none)
    # Augmentation of D's inputs: none (the paper: L(x) is the reconstruction error of the images themselves) or
    # diff (DiffAugment on real and generated images alike); not ada, whose signal is the sign of D's logits.
    augment: Literal["auto", "none", "diff", "ada"] = "none"
    gamma: float = 0.5  # γ, the diversity ratio E[L(G(z))] / E[L(x)] of the equilibrium (the paper: 0.3 to 0.7)
    lambda_k: float = 0.001  # λ_k, the proportional gain of k_t's control (the paper's 0.001)
    lr_decay: float = 0.5  # both rates are multiplied by this when M_global stalls (the paper halves them)
    lr_window: int = 1000  # steps whose mean M_global is one point of the stall rule
    lr_patience: int = 3  # windows in a row without a new lowest mean M_global before a cut; 0: never cut

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.gamma <= 1 or self.lambda_k < 0:
            raise ConfigError(f"gamma must be in (0, 1] and lambda_k >= 0, got {self.gamma}, {self.lambda_k}")
        if not 0 < self.lr_decay <= 1 or self.lr_window < 1 or self.lr_patience < 0:
            raise ConfigError("lr_decay must be in (0, 1], lr_window >= 1 and lr_patience >= 0")
        refused = {
            "class_names": bool(self.class_names),  # unconditional
            "feature_matching": self.feature_matching,
            "minibatch_kernels": bool(self.minibatch_kernels),
            "minibatch_std": self.minibatch_std,
            "real_label": self.real_label != 1.0,
            "augment=ada": self.augment == "ada",
        }
        if any(refused.values()):
            names = ", ".join(name for name, on in refused.items() if on)
            raise ConfigError(f"began: {names} do not apply to an auto-encoder discriminator")


def build_generator(config: BEGANConfig, direction: str = "generate") -> BEGANGenerator:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: a generator has only 'generate'")
    return BEGANGenerator(
        config.latent_dim, config.data.channels or 3, config.data.image_size, width=config.generator_channels
    )


def build_discriminator(config: BEGANConfig) -> BEGANDiscriminator:
    assert config.data.channels is not None
    return BEGANDiscriminator(
        config.data.channels,
        config.data.image_size,
        width=config.discriminator_channels,
        embedding_dim=config.latent_dim,
    )


def generator_inputs(config: BEGANConfig) -> tuple[GeneratorInput, ...]:
    """z ~ N(0, I) of latent_dim (BEGANGenerator's argument)."""
    return (GeneratorInput("z", "normal", (config.latent_dim,)),)


def reconstruction_loss(D: nn.Module, v: Tensor) -> Tensor:
    """L(v) = |v − D(v)|, the mean absolute error over pixels and batch, in fp32 (a scalar)."""
    return (v.float() - D(v).float()).abs().mean()


def update_k(k: Tensor, loss_real: Tensor, loss_fake: Tensor, gamma: float, lambda_k: float) -> Tensor:
    """k_{t+1} = clip(k_t + λ_k·(γ·L(x) − L(G(z))), 0, 1), in fp32 (eq. 4)."""
    return torch.clamp(k + lambda_k * (gamma * loss_real - loss_fake), 0.0, 1.0)


def convergence(loss_real: Tensor, loss_fake: Tensor, gamma: float) -> Tensor:
    """M_global = L(x) + |γ·L(x) − L(G(z))| (§3.4.1): falls as training converges."""
    return loss_real + (gamma * loss_real - loss_fake).abs()


class StallDecay:
    """The paper's "decaying [the learning rate] by a factor of 2 when the measure of convergence stalls", as a
    deterministic rule: M_global is averaged over consecutive windows of `window` steps; a window whose mean is not
    below the lowest mean so far is a stall, and after `patience` stalls in a row both rates are multiplied by
    `factor` and the count starts again (the lowest mean is kept). patience 0: the rate never changes.

    Its state (lowest mean, stalls in a row, cuts so far) is part of a checkpoint, so a resumed run cuts where an
    uninterrupted one does. The rate is lr·factor^cuts.
    """

    def __init__(self, lr: float, *, factor: float = 0.5, window: int = 1000, patience: int = 3) -> None:
        self.base_lr, self.factor, self.window, self.patience = lr, factor, window, patience
        self.best, self.stalls, self.cuts = math.inf, 0, 0

    @property
    def lr(self) -> float:
        return self.base_lr * self.factor**self.cuts

    def ends_window(self, step: int) -> bool:
        """Whether (0-based) step `step` is a window's last: windows are a pure function of the step."""
        return (step + 1) % self.window == 0

    def update(self, mean: float) -> bool:
        """One window's mean M_global; True when it cuts the rate."""
        if mean < self.best:
            self.best, self.stalls = mean, 0
            return False
        self.stalls += 1
        if not self.patience or self.stalls < self.patience:
            return False
        self.stalls, self.cuts = 0, self.cuts + 1
        return True

    def state(self) -> dict[str, Tensor]:
        return {
            "best": torch.tensor(self.best, dtype=torch.float64),
            "stalls": torch.tensor(self.stalls, dtype=torch.int64),
            "cuts": torch.tensor(self.cuts, dtype=torch.int64),
        }

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.best, self.stalls, self.cuts = float(state["best"]), int(state["stalls"]), int(state["cuts"])


class BEGAN(GeneratorRecipe):
    """Generator and auto-encoder discriminator; each step updates D, then G, then k_t (and, at a window's end,
    perhaps the learning rate)."""

    name = "began"
    batches_per_step = 1
    loss_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator G": ("G",),
        "discriminator D": ("D", "L_real", "L_fake"),
        "convergence M_global (not a loss)": ("M_global",),
        "equilibrium k_t (not a loss)": ("k_t",),
    }

    def __init__(self, config: BEGANConfig, engine: Engine) -> None:
        if config.train.steps < 1 or config.data.channels is None:
            raise ConfigError("train.steps and data.channels must be resolved before building the recipe")
        self.config, self.engine = config, engine
        self.G, self.D = build_networks(
            config, engine, lambda: build_discriminator(config), lambda: build_generator(config)
        )
        betas = (config.optim.beta1, config.optim.beta2)
        self.opt_G = engine.adam(self.G.parameters(), lr=config.lr_G, betas=betas)
        self.opt_D = engine.adam(self.D.parameters(), lr=config.optim.lr, betas=betas)
        self.setup_techniques()
        # The equilibrium's state, on the device (no host synchronisation per step): k_t, and the window's sum of
        # M_global for the stall rule.
        self.k = torch.zeros((), device=engine.device)
        self.window_sum = torch.zeros((), device=engine.device)
        self.schedule = StallDecay(
            config.optim.lr, factor=config.lr_decay, window=config.lr_window, patience=config.lr_patience
        )

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        c = self.config
        set_learning_rate(self.schedule.lr, self.opt_G, self.opt_D)
        real = batch["image"]
        z = torch.randn(real.shape[0], c.latent_dim, device=real.device)

        # D: L_D = L(x) − k_t·L(G(z)): reconstruct real images well and generated ones badly, by k_t.
        with self.engine.autocast():
            fake = self.G(z)
            loss_real = reconstruction_loss(self.D, self.augment(real))
            loss_fake = reconstruction_loss(self.D, self.augment(fake.detach()))
            loss_D = loss_real - self.k * loss_fake + self.discriminator_extra()
        self.engine.optimize(loss_D, self.opt_D)

        # G: L_G = L(G(z)), through the just-updated D.
        with self.engine.frozen(self.D):
            with self.engine.autocast():
                loss_G = self.generator_objective(reconstruction_loss(self.D, self.augment(fake)), real, fake)
            self.engine.optimize(loss_G, self.opt_G)
        for average in self.history:
            average.update()

        # The equilibrium, from D's-step losses (the mean over all processes: the expectations are the global
        # batch's, and every process keeps the same k_t and cuts the rate at the same window).
        losses = self.engine.all_mean({"real": loss_real.detach(), "fake": loss_fake.detach()})
        measure = convergence(losses["real"], losses["fake"], c.gamma)
        self.k = update_k(self.k, losses["real"], losses["fake"], c.gamma, c.lambda_k)
        self.window_sum = self.window_sum + measure
        if self.schedule.ends_window(step):  # one read from the device per window
            self.schedule.update(float(self.window_sum) / self.schedule.window)
            self.window_sum = torch.zeros_like(self.window_sum)
        return {
            "G": loss_G.detach(),
            "D": loss_D.detach(),
            "L_real": loss_real.detach(),
            "L_fake": loss_fake.detach(),
            "k_t": self.k,  # after this step's update: k_{t+1}
            "M_global": measure,
        }

    def preview(self, inputs: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
        """An 8×8 grid of samples from fixed latents."""
        G = self.engine.unwrap(self.G)
        with torch.no_grad():
            images = G(inputs["z"]).clamp(-1, 1)
        return [("", row) for row in images.split(8)]

    def extra_state(self) -> dict[str, Tensor]:
        """k_t, the stall rule's state and window sum, besides augmentation and historical averaging."""
        state = {"began.k": self.k, "began.window_sum": self.window_sum}
        state |= {f"began.schedule.{k}": v for k, v in self.schedule.state().items()}
        return super().extra_state() | state

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        super().load_extra_state(state)
        self.k = state["began.k"].to(self.engine.device).clone()
        self.window_sum = state["began.window_sum"].to(self.engine.device).clone()
        prefix = "began.schedule."
        self.schedule.load_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
