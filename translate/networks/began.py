"""BEGAN's networks (Berthelot, Schumm, Metz 2017, arXiv:1703.10717, figure 1): an auto-encoding discriminator,
and a generator with the architecture (not the weights) of that auto-encoder's decoder.

Every convolution is 3×3 with an ELU; there is no batch norm, no dropout and no transposed convolution. The
decoder maps an embedding of h dimensions (64 in the paper, also the size of z) by a fully connected layer to an
8×8 map of n filters, then runs two convolutions per scale, doubling by nearest-neighbour upsampling between
scales, and ends in a convolution to the image's channels. The encoder mirrors it: a first convolution, two per
scale, a stride-2 convolution between scales ("sub-sampling") whose filters grow linearly (n, 2n, 3n, ...), and a
fully connected layer from the final 8×8 map to h. Scales are added or removed with the image size, the smallest
map staying 8×8 (§4.1: 32 to 256 px). The decoder's last convolution has no activation, as in the paper's figure:
the generator's images are clipped to [-1, 1] only where they become pixels.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

BASE = 8  # the smallest map, 8×8, at every image size (§4.1)


def scales(image_size: int) -> int:
    """Maps from 8×8 to image_size (3 for 32 px: 8, 16, 32; 5 for 128 px)."""
    depth = math.log2(image_size / BASE)
    if image_size < 2 * BASE or not depth.is_integer():
        raise ValueError(f"image_size must be a power of two from {2 * BASE} up, got {image_size}")
    return int(depth) + 1


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.ELU()]


class BEGANDecoder(nn.Module):
    """(N, embedding_dim) → (N, channels, image_size, image_size), unbounded (no output activation)."""

    def __init__(self, embedding_dim: int = 64, channels: int = 3, image_size: int = 64, *, width: int = 64) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Linear(embedding_dim, width * BASE * BASE)  # h → 8×8×n
        layers: list[nn.Module] = []
        for index in range(scales(image_size)):
            if index:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers += _conv(width, width) + _conv(width, width)
        layers.append(nn.Conv2d(width, channels, 3, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.layers(self.project(h).unflatten(1, (self.width, BASE, BASE)))  # (N, n, 8, 8) first


class BEGANEncoder(nn.Module):
    """(N, channels, image_size, image_size) → (N, embedding_dim)."""

    def __init__(self, channels: int = 3, image_size: int = 64, *, width: int = 64, embedding_dim: int = 64) -> None:
        super().__init__()
        count = scales(image_size)
        layers = _conv(channels, width)
        for index in range(count):
            filters = width * (index + 1)  # n, 2n, 3n, ...: one more n at each sub-sampling
            layers += _conv(filters, filters) + _conv(filters, filters)
            if index < count - 1:
                layers += _conv(filters, filters + width, stride=2)
        self.layers = nn.Sequential(*layers, nn.Flatten())  # (N, count·n·8·8)
        self.embed = nn.Linear(width * count * BASE * BASE, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(self.layers(x))


class BEGANDiscriminator(nn.Module):
    """D(v) = decoder(encoder(v)): (N, C, S, S) → its reconstruction, the same shape. BEGAN's loss is the
    reconstruction error L(v) = |v − D(v)| (translate.recipes.began.reconstruction_loss)."""

    def __init__(self, channels: int = 3, image_size: int = 64, *, width: int = 64, embedding_dim: int = 64) -> None:
        super().__init__()
        self.encoder = BEGANEncoder(channels, image_size, width=width, embedding_dim=embedding_dim)
        self.decoder = BEGANDecoder(embedding_dim, channels, image_size, width=width)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class BEGANGenerator(nn.Module):
    """G(z): (N, latent_dim) → (N, channels, image_size, image_size); the decoder's architecture, its own weights.
    The argument's name is the generator's input name (recipes.began.generator_inputs)."""

    def __init__(self, latent_dim: int = 64, channels: int = 3, image_size: int = 64, *, width: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.decoder = BEGANDecoder(latent_dim, channels, image_size, width=width)

    def forward(self, z: Tensor) -> Tensor:
        return self.decoder(z)
