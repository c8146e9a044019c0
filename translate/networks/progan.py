"""The progressively grown generator and discriminator of Karras, Aila, Laine, Lehtinen 2018 (arXiv:1710.10196).

Both networks hold every resolution from 4×4 up to the final one and run up to `level` (0: 4 px, 1: 8 px, ...).
While a new level fades in, its output is blended with the skip path of the level below, by α rising 0 → 1:

    G:  α·toRGB_L(block_L(h)) + (1 − α)·upsample(toRGB_{L−1}(h))       (h: the features at level L − 1)
    D:  α·block_L(fromRGB_L(x)) + (1 − α)·fromRGB_{L−1}(avgpool(x))

§4: every layer has an equalised learning rate (weights drawn from N(0, 1) and scaled at run time by He's
constant √(2 / fan_in)), G normalises each pixel's feature vector after every convolution, and D's last block sees
the minibatch standard deviation as one more feature map. G's output is linear, as in the paper (no tanh); the
deploy path clips images to [−1, 1].

Widths follow the official code's rule, halving per doubling of the resolution from a cap: a level at R px has
min(max_channels, base_channels × image_size / R) feature maps, so base_channels is the width at the final size.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.networks.dcgan import MinibatchStd

SLOPE = 0.2  # leaky ReLU everywhere (§A.1)


class EqualizedConv2d(nn.Conv2d):
    """A convolution whose weights are N(0, 1) and multiplied by gain/√fan_in in every forward pass (§4.1), so
    Adam's per-parameter step sizes move every layer at the same speed whatever its fan-in. (An nn.Conv2d, so
    that what inspects a network's convolutions, such as `translate probe`, finds these.)"""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, gain: float = math.sqrt(2)) -> None:
        # 3×3 keeps the size; the 4×4 of D's last block is valid (4×4 → 1×1).
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2 if kernel % 2 else 0)
        nn.init.normal_(self.weight)
        nn.init.zeros_(self.bias)
        self.scale = gain / math.sqrt(in_channels * kernel * kernel)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.scale, self.bias)


class EqualizedLinear(nn.Linear):
    """A fully connected layer with the equalised learning rate (see EqualizedConv2d)."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)) -> None:
        super().__init__(in_features, out_features)
        nn.init.normal_(self.weight)
        nn.init.zeros_(self.bias)
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x: Tensor) -> Tensor:
    """§4.2: each pixel's feature vector scaled to unit mean square, b = a / √(mean_j a_j² + 1e-8)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def level_sizes(image_size: int) -> tuple[int, ...]:
    """The resolutions a network grows through: 4, 8, ..., image_size."""
    return tuple(4 * 2**level for level in range(int(math.log2(image_size)) - 1))


def level_width(size: int, image_size: int, base_channels: int, max_channels: int) -> int:
    """Feature maps at `size` px: base_channels at the final size, doubling per halving, at most max_channels."""
    return min(max_channels, base_channels * image_size // size)


# α: a float, or a 0-d tensor while a level fades in (a compiled network then sees one graph for every α, where
# a Python float would be a constant of the graph and recompile it at every step).
Alpha = float | Tensor


def fading(alpha: Alpha) -> bool:
    """Whether the skip path of the level below is still blended in (a tensor α always is)."""
    return isinstance(alpha, Tensor) or alpha < 1


def blend(alpha: Alpha, new: Tensor, old: Tensor) -> Tensor:
    """The fade-in's α·new + (1 − α)·old, in the images' precision."""
    return old + alpha * (new - old)


def fade_reals(images: Tensor, alpha: Alpha) -> Tensor:
    """Real images at a level that is fading in, as D sees them: α·x + (1 − α)·upsample(avgpool(x)), the same blend
    of the new resolution with the old one that G's output is (the official code's lod interpolation of reals)."""
    if not fading(alpha):
        return images
    coarse = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="nearest")
    return blend(alpha, images, coarse)


class _GeneratorBlock(nn.Module):
    """Upsample ×2 (nearest), then two 3×3 convolutions, each with leaky ReLU and pixel norm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3)
        self.conv2 = EqualizedConv2d(out_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = pixel_norm(F.leaky_relu(self.conv1(x), SLOPE))
        return pixel_norm(F.leaky_relu(self.conv2(x), SLOPE))


class ProGANGenerator(nn.Module):
    """z → an image at `level`'s resolution (4·2^level px), faded with the level below by `alpha`.

    Called with z alone (export, sampling) it draws at `output_level`, the final resolution unless
    `set_resolution` chose an earlier one.
    """

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        image_size: int,
        *,
        base_channels: int = 16,
        max_channels: int = 512,
    ) -> None:
        super().__init__()
        sizes = level_sizes(image_size)
        widths = [level_width(s, image_size, base_channels, max_channels) for s in sizes]
        self.latent_dim, self.resolutions = latent_dim, sizes
        self.output_level = len(sizes) - 1
        # The 4×4 block: z (pixel-normalised) → a dense layer to 4×4 maps (the paper's 4×4 "convolution" of a 1×1
        # input; the official code's gain √2/4), then a 3×3 convolution.
        self.dense = EqualizedLinear(latent_dim, widths[0] * 16, gain=math.sqrt(2) / 4)
        self.conv = EqualizedConv2d(widths[0], widths[0], 3)
        self.blocks = nn.ModuleList(_GeneratorBlock(a, b) for a, b in itertools.pairwise(widths))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths)

    def set_resolution(self, size: int) -> None:
        """Draw at `size` px when called without a level (exporting an earlier resolution)."""
        if size not in self.resolutions:
            raise ValueError(f"this generator draws at {', '.join(map(str, self.resolutions))} px, not {size}")
        self.output_level = self.resolutions.index(size)

    def forward(self, z: Tensor, level: int | None = None, alpha: Alpha = 1.0) -> Tensor:
        level = self.output_level if level is None else level
        x = self.dense(pixel_norm(z)).view(z.shape[0], -1, 4, 4)
        x = pixel_norm(F.leaky_relu(x, SLOPE))
        x = pixel_norm(F.leaky_relu(self.conv(x), SLOPE))
        for block in self.blocks[: level - 1] if level > 0 else ():
            x = block(x)
        if level == 0:
            return self.to_rgb[0](x)
        new = self.to_rgb[level](self.blocks[level - 1](x))
        if not fading(alpha):
            return new
        old = F.interpolate(self.to_rgb[level - 1](x), scale_factor=2, mode="nearest")
        return blend(alpha, new, old)


class _DiscriminatorBlock(nn.Module):
    """Two 3×3 convolutions with leaky ReLU, then average pooling ×½."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualizedConv2d(in_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.conv1(x), SLOPE)
        return F.avg_pool2d(F.leaky_relu(self.conv2(x), SLOPE), 2)


class ProGANDiscriminator(nn.Module):
    """An image at `level`'s resolution → one score per image (a WGAN critic: no sigmoid, no batch norm)."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        *,
        base_channels: int = 16,
        max_channels: int = 512,
        group: int = 4,
    ) -> None:
        super().__init__()
        sizes = level_sizes(image_size)
        widths = [level_width(s, image_size, base_channels, max_channels) for s in sizes]
        self.resolutions = sizes
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, w, 1) for w in widths)
        # blocks[i] takes level i + 1's maps down to level i's.
        self.blocks = nn.ModuleList(_DiscriminatorBlock(b, a) for a, b in itertools.pairwise(widths))
        # The 4×4 block: minibatch standard deviation (one more map), a 3×3 and a 4×4 convolution, a linear score.
        self.minibatch_std = MinibatchStd(group)
        self.conv = EqualizedConv2d(widths[0] + 1, widths[0], 3)
        self.conv4 = EqualizedConv2d(widths[0], widths[0], 4)
        self.score = EqualizedLinear(widths[0], 1, gain=1.0)

    def forward(self, x: Tensor, level: int | None = None, alpha: Alpha = 1.0) -> Tensor:
        level = len(self.resolutions) - 1 if level is None else level
        h = F.leaky_relu(self.from_rgb[level](x), SLOPE)
        if level > 0:
            h = self.blocks[level - 1](h)
            if fading(alpha):
                old = F.leaky_relu(self.from_rgb[level - 1](F.avg_pool2d(x, 2)), SLOPE)
                h = blend(alpha, h, old)
            for block in reversed(self.blocks[: level - 1]):
                h = block(h)
        h = F.leaky_relu(self.conv(self.minibatch_std(h)), SLOPE)
        h = F.leaky_relu(self.conv4(h), SLOPE)
        return self.score(h.flatten(1)).squeeze(1)
