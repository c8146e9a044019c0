"""DCGAN generator and discriminator (Radford et al. 2015), with optional class conditioning.

Generator: z (N, latent_dim) → a 4×4 map by a transposed convolution, then one stride-2 transposed convolution
per doubling up to `image_size`, batch norm + ReLU everywhere but the Tanh output layer. Discriminator: one
stride-2 convolution per halving down to 4×4, LeakyReLU 0.2, no normalisation on the input layer, then a linear
score. Both follow the paper's rules (no pooling, no hidden fully connected layers).

Conditioning (Mirza & Osindero 2014): the generator's input is z multiplied elementwise by a learned class
embedding. Concatenating the embedding instead let the generator ignore z and draw one image per class (measured:
per-pixel spread across z fell to 0.03 against 0.33 for the unconditional model); the product keeps every class
a function of z. The discriminator is a projection discriminator (Miyato & Koyama 2018):
D(x, y) = ψ(φ(x)) + embed(y)·φ(x).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

CriticNorm = Literal["batch", "layer", "spectral", "none"]


def _depth(image_size: int) -> int:
    """Stride-2 layers between 4×4 and image_size (3 for 32 px, 6 for 256 px)."""
    depth = math.log2(image_size) - 2
    if image_size < 32 or not depth.is_integer():
        raise ValueError(f"image_size must be a power of two from 32 up, got {image_size}")
    return int(depth)


class DCGANGenerator(nn.Module):
    """(N, latent_dim) [+ labels (N,)] → (N, channels, image_size, image_size) in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 3,
        image_size: int = 64,
        *,
        base_channels: int = 64,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        depth = _depth(image_size)
        width = base_channels * 2 ** (depth - 1)  # 32 px: 256 → 128 → 64 → channels
        self.embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_dim = latent_dim
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, width, 4, 1, 0, bias=False),  # 1×1 → 4×4
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(depth - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2)]
            layers.append(nn.ReLU(True))
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def embed(self, labels: Tensor) -> Tensor:
        """(N,) class indices → (N, latent_dim) learned class embeddings (per-class gains on z)."""
        if self.embedding is None:
            raise ValueError("this generator is not class-conditional")
        return self.embedding(labels)

    def forward(self, z: Tensor, label: Tensor | None = None, *, embedding: Tensor | None = None) -> Tensor:
        """`label` (N,) (or a ready `embedding`, e.g. a blend of two classes) is required for conditional models.
        The argument names are the generator's input names (recipes.generation.generator_inputs)."""
        if self.embedding is not None:
            if embedding is None:
                if label is None:
                    raise ValueError("a class-conditional generator needs labels")
                embedding = self.embed(label)
            z = z * embedding.to(z.dtype)  # (N, latent_dim): the class gates every latent dimension
        return self.layers(z[:, :, None, None])


class ClusterGenerator(DCGANGenerator):
    """The conditional generator of a cGAN trained on clusters of unlabelled images (translate.data.clusters): the
    same network, its class input named `cluster` (a latent code, recipes.cgan.generator_inputs)."""

    def forward(self, z: Tensor, cluster: Tensor | None = None, *, embedding: Tensor | None = None) -> Tensor:
        return super().forward(z, cluster, embedding=embedding)


def _critic_norm(kind: CriticNorm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # per-sample normalisation over (C, H, W): WGAN-GP forbids batch norm in the critic
        return nn.GroupNorm(1, channels)
    if kind in ("none", "spectral"):  # spectral normalisation acts on the weights instead (see below)
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use batch, layer, spectral or none")


class DCGANDiscriminator(nn.Module):
    """(N, channels, S, S) [+ labels (N,)] → (N,) logits (or critic scores)."""

    def __init__(
        self,
        channels: int = 3,
        image_size: int = 64,
        *,
        base_channels: int = 64,
        norm: CriticNorm = "batch",
        num_classes: int = 0,
        minibatch_std: bool = False,
        minibatch_kernels: int = 0,
        classifier: bool = False,
    ) -> None:
        super().__init__()
        depth = _depth(image_size)
        width = base_channels
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm != "batch"), _critic_norm(norm, width * 2)]
            layers.append(nn.LeakyReLU(0.2, True))
            width *= 2
        if minibatch_std:
            layers.append(MinibatchStd())
        self.features = nn.Sequential(*layers, nn.Flatten())  # φ(x): (N, (width [+ 1])·4·4)
        dim = (width + int(minibatch_std)) * 16
        self.minibatch = MinibatchDiscrimination(dim, minibatch_kernels) if minibatch_kernels else None
        self.score = nn.Linear(dim + minibatch_kernels, 1)  # ψ, the same as DCGAN's final 4×4 convolution
        self.projection = nn.Embedding(num_classes, dim) if num_classes else None
        if self.projection is not None:  # start near the unconditional critic; N(0, 1) would swamp ψ
            nn.init.normal_(self.projection.weight, 0.0, 0.02)
        # An auxiliary classifier on φ (AC-GAN, Odena et al. 2017): class logits beside the score.
        self.classifier = nn.Linear(dim, num_classes) if classifier and num_classes else None
        if norm == "spectral":
            # Spectral normalisation (Miyato et al. 2018) of every layer bounds D's Lipschitz constant; it is the
            # projection discriminator's own setting and, unlike batch norm, does not mix the samples of a batch.
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    nn.utils.parametrizations.spectral_norm(module)

    def forward(
        self, x: Tensor, labels: Tensor | None = None, *, with_classes: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The scores (N,); `with_classes` (needs the auxiliary classifier): also its class logits (N, classes),
        from the same pass over φ. One forward for both, so wrappers (DDP, torch.compile) see a single call."""
        if with_classes and self.classifier is None:
            raise ValueError("this discriminator has no auxiliary classifier")
        phi = self.features(x)
        scored = phi if self.minibatch is None else torch.cat([phi, self.minibatch(phi)], dim=1)
        out = self.score(scored).squeeze(1)
        if self.projection is not None:
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            out = out + (self.projection(labels) * phi).sum(dim=1)
        return (out, self.classifier(phi)) if with_classes else out


class MinibatchStd(nn.Module):
    """Karras et al. 2018 (ProGAN), §3: the standard deviation of every feature over a group of samples, averaged
    to one number per group and appended as one more feature map, so D sees how varied a batch is and can punish
    a generator that collapses. Groups of `group` samples (4 in the paper; the whole batch when it does not split)."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = self.group if n % self.group == 0 else n
        std = x.reshape(g, -1, c, h, w).var(dim=0, unbiased=False).add(1e-8).sqrt()  # (N/g, C, H, W)
        per_group = std.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(g, 1, h, w)  # (N, 1, H, W)
        return torch.cat([x, per_group.to(x.dtype)], dim=1)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, §3.2: each sample's features f (A,) are projected by a tensor T to B kernels of C
    dimensions, M (B, C); for every kernel, o_b(x_i) = Σ_j exp(−‖M_i,b − M_j,b‖₁) over the other samples j, and o
    (B,) is appended to f. A collapsed batch has large o, which D learns to spot. B = 100, C = 5 in their code."""

    def __init__(self, in_features: int, kernels: int = 100, dims: int = 5) -> None:
        super().__init__()
        self.kernels, self.dims = kernels, dims
        self.T = nn.Parameter(torch.randn(in_features, kernels * dims) * 0.05)

    def forward(self, f: Tensor) -> Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.dims)  # (N, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(dim=3)  # (N, N, B)
        return torch.exp(-l1).sum(dim=1) - 1.0  # (N, B); exp(0) = 1 is the sample itself
