"""LAPGAN's pyramid and networks (Denton, Chintala, Szlam, Fergus 2015, arXiv:1506.05751): a Laplacian pyramid,
one GAN per level, and the two modules that hold every level's generator and discriminator.

Pyramid. d halves an image, u doubles it; the Gaussian pyramid is I_K = I, I_{k−1} = d(I_k) down to the coarse
I_0, and the bands are h_k = I_k − u(I_{k−1}) (k = 1..K), so I is rebuilt exactly from I_0 and the bands:
I_k = u(I_{k−1}) + h_k. Levels are counted from the coarsest here (k = 0), the order in which samples are drawn;
the paper counts from the image (its I_0 is the image, its I_K the coarse one).

- d is the 2×2 mean (average pooling): anti-aliased (each pixel is the mean of the four it replaces, a box
  low-pass), exact at the borders (no padding to choose), the area filter that the data pipeline itself shrinks
  images with, and nothing to learn or tune. d is used only on real images in training (never in an export).
  A Gaussian 5×5 pyrdown (kornia) suppresses aliasing a little better, at the cost of a border mode, a blur and a
  dependency in the network code, for the handful of 2× steps a pyramid of 8 to 64 px has.
- u is bilinear upsampling with align_corners=False: plain torch, a single ONNX Resize (half-pixel, linear) that
  ONNX Runtime and OpenVINO run as PyTorch does. u lies in every sample's graph.

Generators. G_0 draws the coarse image from z: fully connected, two hidden ReLU layers (1200 units in the paper's
CIFAR-10 model), tanh output. Each finer G_k takes l = u(coarser image) with a noise plane z_k at its resolution
as one more input channel (the paper's "4th colour plane") and returns the band h̃_k: three convolutions (7×7,
7×7, 5×5, as the authors' code, facebook/eyescream) with batch norm and ReLU between them, and no output
non-linearity, since a band holds differences of pixels. The sampled image u(Ĩ_{k−1}) + h̃_k is therefore not
clamped; it becomes pixels (clipped to [-1, 1]) only at the end.

Discriminators. D_0 judges the coarse image alone: fully connected, two hidden ReLU layers of 600 units with
dropout. Each finer D_k judges the pair (l, l + h) as 2C channels: two 5×5 convolutions (the second of stride 2)
with ReLU, dropout, and a linear score.

Classes (optional): a learned embedding of the label joins G_0's z (latent_dim values) and D_0's input (one
coarse plane), and at finer levels a learned plane per class, R×R values, joins the first layer's maps of G_k
and D_k (the paper: "passing it through a linear layer whose output is reshaped into a single plane feature map
which is then concatenated with the 1st layer maps"; a linear layer of a one-hot label is an embedding).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DROPOUT = 0.5  # the discriminators' dropout (the authors' code: nn.Dropout(), p = 0.5)


def downsample(image: Tensor) -> Tensor:
    """d: (N, C, H, W) → (N, C, H/2, W/2), the mean of each 2×2 block."""
    return F.avg_pool2d(image, 2)


def upsample(image: Tensor) -> Tensor:
    """u: (N, C, H, W) → (N, C, 2H, 2W), bilinear, align_corners=False."""
    return F.interpolate(image, scale_factor=2.0, mode="bilinear", align_corners=False)


def pyramid_sizes(image_size: int, coarse_size: int) -> tuple[int, ...]:
    """The levels' resolutions, coarse to fine: (8, 16, 32) for 32 px from 8."""
    for name, value in (("image_size", image_size), ("coarse_size", coarse_size)):
        if value < 4 or not math.log2(value).is_integer():
            raise ValueError(f"{name} must be a power of two from 4 up, got {value}")
    if coarse_size >= image_size:
        raise ValueError(f"coarse_size must be below image_size, got {coarse_size} and {image_size}")
    return tuple(coarse_size * 2**k for k in range(int(math.log2(image_size // coarse_size)) + 1))


def noise_name(size: int) -> str:
    """The generator input of a finer level's noise plane, e.g. noise_16."""
    return f"noise_{size}"


def gaussian_pyramid(image: Tensor, levels: int) -> list[Tensor]:
    """[I_0, ..., I_K], coarse to fine, I_K = image and I_{k−1} = d(I_k); `levels` = K + 1."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.insert(0, downsample(pyramid[0]))
    return pyramid


def laplacian_pyramid(image: Tensor, levels: int) -> tuple[Tensor, list[Tensor]]:
    """(I_0, [h_1, ..., h_K]): the coarse image and the band-pass images h_k = I_k − u(d(I_k)), coarse to fine."""
    pyramid = gaussian_pyramid(image, levels)
    return pyramid[0], [fine - upsample(coarse) for coarse, fine in itertools.pairwise(pyramid)]


def reconstruct(coarse: Tensor, bands: Sequence[Tensor]) -> Tensor:
    """The image from its Laplacian pyramid: I_k = u(I_{k−1}) + h_k from I_0, coarse to fine."""
    image = coarse
    for band in bands:
        image = upsample(image) + band
    return image


def level_input(lowpass: Tensor, image: Tensor) -> Tensor:
    """What D_k judges: (l, l + h), (N, 2C, R, R); the real l + h is I_k itself."""
    return torch.cat([lowpass, image], dim=1)


def pyramid_inputs(image: Tensor, levels: int) -> list[Tensor]:
    """What the discriminators judge of one image: [I_0, (u(I_0), I_1), ..., (u(I_{K−1}), I_K)] of its pyramid."""
    pyramid = gaussian_pyramid(image, levels)
    return [pyramid[0], *(level_input(upsample(coarse), fine) for coarse, fine in itertools.pairwise(pyramid))]


def _plane(embedding: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    """(N, R·R) per-sample class values → one (N, 1, R, R) feature plane."""
    return embedding.to(dtype).view(-1, 1, size, size)


class CoarseGenerator(nn.Module):
    """G_0: z (N, latent_dim) [with its class embedding (N, latent_dim)] → I_0 (N, C, S, S) in [-1, 1]."""

    def __init__(self, latent_dim: int, channels: int, size: int, *, units: int = 1200, num_classes: int = 0) -> None:
        super().__init__()
        self.shape = (channels, size, size)
        self.embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        inputs = latent_dim * (2 if num_classes else 1)
        self.net = nn.Sequential(
            nn.Linear(inputs, units),
            nn.ReLU(True),
            nn.Linear(units, units),
            nn.ReLU(True),
            nn.Linear(units, channels * size * size),
            nn.Tanh(),
        )

    def forward(self, z: Tensor, embedding: Tensor | None = None) -> Tensor:
        x = z if embedding is None else torch.cat([z, embedding.to(z.dtype)], dim=1)
        return self.net(x).unflatten(1, self.shape)


class LevelGenerator(nn.Module):
    """G_k: l (N, C, R, R) and a noise plane (N, 1, R, R) [and a class plane's values (N, R·R)] → h̃ (N, C, R, R)."""

    def __init__(self, channels: int, size: int, *, width: int = 128, num_classes: int = 0) -> None:
        super().__init__()
        self.size = size
        self.embedding = nn.Embedding(num_classes, size * size) if num_classes else None
        plane = 1 if num_classes else 0
        self.first = nn.Sequential(
            nn.Conv2d(channels + 1, width, 7, 1, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)
        )
        self.rest = nn.Sequential(
            nn.Conv2d(width + plane, width, 7, 1, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.Conv2d(width, channels, 5, 1, 2),
        )

    def forward(self, lowpass: Tensor, noise: Tensor, embedding: Tensor | None = None) -> Tensor:
        x = self.first(torch.cat([lowpass, noise.to(lowpass.dtype)], dim=1))
        if embedding is not None:
            x = torch.cat([x, _plane(embedding, self.size, x.dtype)], dim=1)
        return self.rest(x)


class CoarseDiscriminator(nn.Module):
    """D_0: I_0 (N, C, S, S) [+ labels (N,)] → (N,) logits."""

    def __init__(self, channels: int, size: int, *, units: int = 600, num_classes: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, size * size) if num_classes else None
        inputs = (channels + (1 if num_classes else 0)) * size * size
        self.net = nn.Sequential(
            nn.Linear(inputs, units),
            nn.ReLU(True),
            nn.Dropout(DROPOUT),
            nn.Linear(units, units),
            nn.ReLU(True),
            nn.Dropout(DROPOUT),
            nn.Linear(units, 1),
        )

    def forward(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        h = x.flatten(1)
        if self.embedding is not None:
            h = torch.cat([h, self.embedding(_needs(label)).to(h.dtype)], dim=1)
        return self.net(h).squeeze(1)


class LevelDiscriminator(nn.Module):
    """D_k: (l, l + h) (N, 2C, R, R) [+ labels (N,)] → (N,) logits."""

    def __init__(self, channels: int, size: int, *, width: int = 128, num_classes: int = 0) -> None:
        super().__init__()
        self.size = size
        self.embedding = nn.Embedding(num_classes, size * size) if num_classes else None
        plane = 1 if num_classes else 0
        self.first = nn.Sequential(nn.Conv2d(2 * channels, width, 5, 1, 2), nn.ReLU(True))
        self.rest = nn.Sequential(
            nn.Conv2d(width + plane, width, 5, 2, 2),
            nn.ReLU(True),
            nn.Dropout(DROPOUT),
            nn.Flatten(),
            nn.Linear(width * (size // 2) ** 2, 1),
        )

    def forward(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        h = self.first(x)
        if self.embedding is not None:
            h = torch.cat([h, _plane(self.embedding(_needs(label)), self.size, h.dtype)], dim=1)
        return self.rest(h).squeeze(1)


def _needs(label: Tensor | None) -> Tensor:
    if label is None:
        raise ValueError("a class-conditional LAPGAN needs labels")
    return label


class LAPGANGenerator(nn.Module):
    """Every level's generator, G_0 to G_K, as one module.

    Called with the generator's named inputs (recipes.lapgan.generator_inputs: z (N, latent_dim), one noise plane
    per finer level, `noise_16` (N, 1, 16, 16) and so on, and `label` (N,) when class-conditional, or a ready
    `embedding` (N, embedding_dim) in its place, e.g. a blend of two classes), it samples coarse to fine:

        Ĩ_0 = G_0(z),   Ĩ_k = u(Ĩ_{k−1}) + G_k(u(Ĩ_{k−1}), noise_k)   → Ĩ_K (N, C, image_size, image_size)

    Called also with `lowpass`, the real low-pass images [l_1, ..., l_K] (l_k = u(d(I_k)), (N, C, R_k, R_k)), it
    runs the levels independently, as they are trained, and returns every level's output: [G_0(z), l_1 + G_1(l_1,
    noise_1), ..., l_K + G_K(l_K, noise_K)]. Both calls use every parameter.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 3,
        image_size: int = 32,
        *,
        coarse_size: int = 8,
        units: int = 1200,
        width: int = 128,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.sizes = pyramid_sizes(image_size, coarse_size)
        self.noise_names = tuple(noise_name(size) for size in self.sizes[1:])
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.coarse = CoarseGenerator(latent_dim, channels, coarse_size, units=units, num_classes=num_classes)
        self.levels = nn.ModuleList(
            LevelGenerator(channels, size, width=width, num_classes=num_classes) for size in self.sizes[1:]
        )
        # The class embedding of every level, concatenated: G_0's, then one plane per finer level.
        self.embedding_sizes = (latent_dim, *(size * size for size in self.sizes[1:]))

    def embed(self, labels: Tensor) -> Tensor:
        """(N,) class indices → (N, embedding_dim): every level's learned class embedding, concatenated."""
        if not self.num_classes:
            raise ValueError("this generator is not class-conditional")
        parts = [self.coarse.embedding(labels), *(level.embedding(labels) for level in self.levels)]
        return torch.cat(parts, dim=1)

    def forward(
        self,
        z: Tensor,
        label: Tensor | None = None,
        *,
        embedding: Tensor | None = None,
        lowpass: Sequence[Tensor] | None = None,
        **noise: Tensor,
    ) -> Tensor | list[Tensor]:
        if set(noise) != set(self.noise_names):
            raise ValueError(f"the generator takes the noise {', '.join(self.noise_names)}, got {', '.join(noise)}")
        classes: list[Tensor | None] = [None] * len(self.embedding_sizes)
        if self.num_classes:
            if embedding is None:
                embedding = self.embed(_needs(label))
            classes = list(embedding.split(self.embedding_sizes, dim=1))
        coarse = self.coarse(z, classes[0])
        steps = zip(self.levels, self.noise_names, classes[1:], strict=True)
        if lowpass is not None:
            if len(lowpass) != len(self.levels):
                raise ValueError(f"lowpass: one image per finer level ({len(self.levels)}), got {len(lowpass)}")
            return [coarse, *(low + G(low, noise[name], e) for low, (G, name, e) in zip(lowpass, steps, strict=True))]
        image = coarse
        for G, name, e in steps:
            low = upsample(image)
            image = low + G(low, noise[name], e)
        return image


class LAPGANDiscriminator(nn.Module):
    """Every level's discriminator, D_0 to D_K, as one module: forward([I_0, (l_1, ·), ..., (l_K, ·)], labels) →
    [logits (N,) per level]. The inputs: the coarse image (N, C, S, S), then each finer level's pair (N, 2C, R, R)
    (`level_input`); or one image (N, C, H, W), judged on its own pyramid (`pyramid_inputs`: what `translate
    probe` reads the discriminators' features from)."""

    def __init__(
        self,
        channels: int = 3,
        image_size: int = 32,
        *,
        coarse_size: int = 8,
        units: int = 600,
        width: int = 128,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        sizes = pyramid_sizes(image_size, coarse_size)
        self.coarse = CoarseDiscriminator(channels, coarse_size, units=units, num_classes=num_classes)
        self.levels = nn.ModuleList(
            LevelDiscriminator(channels, size, width=width, num_classes=num_classes) for size in sizes[1:]
        )

    def forward(self, inputs: Sequence[Tensor] | Tensor, label: Tensor | None = None) -> list[Tensor]:
        judges = [self.coarse, *self.levels]
        if isinstance(inputs, Tensor):
            inputs = pyramid_inputs(inputs, len(judges))
        if len(inputs) != len(judges):
            raise ValueError(f"one input per level ({len(judges)}), got {len(inputs)}")
        return [D(x, label) for D, x in zip(judges, inputs, strict=True)]
