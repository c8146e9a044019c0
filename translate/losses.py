"""Adversarial losses and the discriminator's history buffer.

Discriminators return raw logits; each loss decides what a target means:
- lsgan (Mao et al. 2017): D -> (D(x) - 1)² + D(G(z))², G -> (D(G(z)) - 1)². CycleGAN's default.
- vanilla (Goodfellow et al. 2014): binary cross-entropy on logits, non-saturating for G. pix2pix's and DCGAN's.
- hinge: D -> relu(1 - D(x)) + relu(1 + D(G(z))), G -> -D(G(z)).
- wasserstein (Arjovsky et al. 2017): D -> D(G(z)) - D(x), G -> -D(G(z)).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

GanLoss = Literal["lsgan", "vanilla", "hinge", "wasserstein"]
GAN_LOSSES: tuple[str, ...] = ("lsgan", "vanilla", "hinge", "wasserstein")


def discriminator_loss(kind: GanLoss, real: Tensor, fake: Tensor, real_target: float = 1.0) -> tuple[Tensor, Tensor]:
    """(loss on real logits, loss on fake logits); the caller sums or averages them.

    `real_target` below 1 is one-sided label smoothing (Salimans et al. 2016, §3.4: 0.9): D is asked for 0.9 on
    real images and still 0 on generated ones, which keeps it from growing overconfident without moving G's optimum
    the way smoothing both sides would. It applies to the losses with a target (lsgan, vanilla).
    """
    if kind == "lsgan":
        return (real - real_target).pow(2).mean(), fake.pow(2).mean()
    if kind == "vanilla":
        return (
            F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_target)),
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)),
        )
    if kind == "hinge":
        return F.relu(1 - real).mean(), F.relu(1 + fake).mean()
    if kind == "wasserstein":
        return -real.mean(), fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}: use one of {', '.join(GAN_LOSSES)}")


def generator_loss(kind: GanLoss, fake: Tensor) -> Tensor:
    """The generator's adversarial loss on the discriminator's logits for generated images."""
    if kind == "lsgan":
        return (fake - 1).pow(2).mean()
    if kind == "vanilla":  # non-saturating: maximise log D(G(z))
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind in ("hinge", "wasserstein"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}: use one of {', '.join(GAN_LOSSES)}")


class ImagePool:
    """History of generated images shown to the discriminator (Shrivastava et al. 2017; CycleGAN uses 50).

    Once full, each new image is either returned as is or, with probability 1/2, swapped for a random stored
    one. Draws come from the pool's own generator and its contents are part of the checkpoint, so a resumed run
    sees exactly the same history.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        """(N, C, H, W) new fakes -> (N, C, H, W) a mix of new and historical fakes, detached."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            swap = torch.rand(1, generator=self.generator).item() < 0.5
            index = int(torch.randint(self.size, (1,), generator=self.generator))
            if swap:
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> dict[str, Tensor]:
        state = {"rng": self.generator.get_state()}
        if self.images:
            state["images"] = torch.stack(self.images).cpu()
        return state

    def load_state(self, state: dict[str, Tensor], device: torch.device) -> None:
        self.generator.set_state(state["rng"])
        self.images = list(state["images"].to(device).unbind(0)) if "images" in state else []
