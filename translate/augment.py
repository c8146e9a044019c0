"""Differentiable augmentation of every image a discriminator sees, real and generated alike.

* **DiffAugment** (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): colour
  (brightness, saturation, contrast), translation by up to 1/8 of the image, and cutout of a square half the
  image's side, applied to every image. Because generated images are augmented too, and the operations are
  differentiable, the generator learns the real distribution, not the augmented one.
* **ADA** (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"): the same operations,
  each applied with probability p, where p follows the discriminator's overfitting: every `ADA_INTERVAL` steps
  r_t = E[sign(D(real))] is compared with a target (0.6), and p moves by the number of images seen over
  `ADA_KIMG` thousand in that direction. (ADA's own pipeline has 18 operations; these are DiffAugment's three,
  which carry most of its effect at these image sizes. Its p is a buffer, saved and restored with the run.)

Translation and cutout are kornia's (`RandomAffine`, `RandomErasing`), on the device and batched. The colour
operations are DiffAugment's own formulas written out: kornia's colour functions clamp to [0, 1], which would zero
the gradient of every saturated pixel of a generated image. Images are (N, C, H, W) in [-1, 1]; any C (saturation
needs 3 and is left out otherwise). Randomness comes from torch's global generator, which checkpoints hold, so a
resumed run draws the same augmentations.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Policy = Literal["none", "diff", "ada"]
POLICIES: tuple[str, ...] = ("none", "diff", "ada")

ADA_TARGET = 0.6  # Karras et al. 2020, §3: r_t target
ADA_INTERVAL = 4  # steps between updates of p (the paper's 4 minibatches)
ADA_KIMG = 500  # thousand images for p to go from 0 to 1 (the paper's speed)
SMALL_DATASET = 5_000  # `--augment auto` turns DiffAugment on below this many training images (Zhao et al.'s regime)


class Augment(nn.Module):
    """`policy` none: identity; diff: every operation on every image; ada: each with the adaptive probability p."""

    def __init__(self, policy: Policy = "diff", *, target: float = ADA_TARGET, kimg: float = ADA_KIMG) -> None:
        super().__init__()
        import kornia.augmentation as K

        if policy not in POLICIES:
            raise ValueError(f"augment policy {policy!r}: use one of {', '.join(POLICIES)}")
        self.policy, self.target, self.kimg = policy, target, kimg
        start = 0.0 if policy == "ada" else 1.0  # ADA starts without augmentation and raises p when D overfits
        self.register_buffer("p", torch.tensor(start, dtype=torch.float64))
        self.register_buffer("signs", torch.zeros(2, dtype=torch.float64))  # Σ sign(D(real)), count since update
        self.translate = K.RandomAffine(degrees=0.0, translate=(0.125, 0.125), padding_mode="zeros", p=1.0)
        self.cutout = K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.policy == "none":
            return x
        p = float(self.p)
        if p <= 0.0:
            return x
        n = x.shape[0]
        x = _where(_chosen(n, p, x), x + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5), x)  # brightness ±0.5
        if x.shape[1] == 3:
            mean = x.mean(dim=1, keepdim=True)
            saturated = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) * 2) + mean  # ×[0, 2] about grey
            x = _where(_chosen(n, p, x), saturated, x)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrasted = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) + 0.5) + mean  # ×[0.5, 1.5]
        x = _where(_chosen(n, p, x), contrasted, x)
        self.translate.p = self.cutout.p = p
        return self.cutout(self.translate(x))

    @torch.no_grad()
    def observe(self, real_logits: Tensor, batch_size: int) -> None:
        """ADA: accumulate sign(D(real)) and, every ADA_INTERVAL calls, move p toward the overfitting target.

        real_logits' first dimension is the batch; a patch discriminator's many logits per image are averaged
        to one sign per image, so p's speed counts images (the paper's unit), however many patches D scores.
        """
        if self.policy != "ada":
            return
        signs = torch.sign(real_logits.detach().double()).reshape(real_logits.shape[0], -1).mean(dim=1)
        self.signs[0] += signs.sum()
        self.signs[1] += signs.numel()
        if int(self.signs[1]) < ADA_INTERVAL * batch_size:
            return
        r_t = float(self.signs[0] / self.signs[1])
        step = float(self.signs[1]) / (self.kimg * 1000)
        self.p.copy_(torch.clamp(self.p + (step if r_t > self.target else -step), 0.0, 1.0))
        self.signs.zero_()


def _chosen(n: int, p: float, x: Tensor) -> Tensor:
    """(N, 1, 1, 1) mask: which images get an operation, each with probability p."""
    if p >= 1.0:
        return torch.ones(n, 1, 1, 1, dtype=torch.bool, device=x.device)
    return torch.rand(n, 1, 1, 1, device=x.device) < p


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask, a, b)


def choose_policy(policy: str, images: int) -> Policy:
    """`auto`: DiffAugment for small datasets (fewer than SMALL_DATASET images), none otherwise."""
    if policy == "auto":
        return "diff" if images < SMALL_DATASET else "none"
    if policy not in POLICIES:
        raise ValueError(f"augment {policy!r}: use auto, {', '.join(POLICIES)}")
    return policy  # type: ignore[return-value]
