"""Anti-aliased resampling with fixed blur filters (Zhang 2019, "Making Convolutional Networks Shift-Invariant
Again"), as the CUT generator (Park et al. 2020) resamples: a stride-2 layer that blurs before it subsamples
(down) or interpolates with a binomial kernel (up), in place of a strided or transposed convolution, whose uneven
overlap draws the checkerboard artefacts of the original CycleGAN generator.

Both are a padding layer and a depthwise `nn.Conv2d` / `nn.ConvTranspose2d` whose kernel is a buffer (fixed, never
trained nor initialised), so the tiling code's receptive-field arithmetic, ONNX export and both runtimes see
ordinary layers.
"""

from __future__ import annotations

from math import comb

import torch
from torch import nn


def binomial(size: int) -> torch.Tensor:
    """The (size, size) binomial kernel, normalised to sum 1: [1, 2, 1]ᵀ[1, 2, 1] / 16 for size 3."""
    row = torch.tensor([comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class _FixedFilter:
    """Replaces a depthwise convolution's weight by a buffer holding `kernel` for every channel."""

    def _fix(self: nn.Module, channels: int, kernel: torch.Tensor) -> None:
        del self.weight  # a Parameter: trained, and drawn by init_weights
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False)


class BlurConv(nn.Conv2d, _FixedFilter):
    """A depthwise convolution with a fixed kernel (the same for every channel), no bias."""

    def __init__(self, channels: int, kernel: torch.Tensor, *, stride: int) -> None:
        super().__init__(channels, channels, kernel.shape[-1], stride=stride, groups=channels, bias=False)
        self._fix(channels, kernel)


class BlurTransposed(nn.ConvTranspose2d, _FixedFilter):
    """A depthwise transposed convolution with a fixed kernel (the same for every channel), no bias."""

    def __init__(self, channels: int, kernel: torch.Tensor, *, stride: int, padding: int) -> None:
        size = kernel.shape[-1]
        super().__init__(channels, channels, size, stride=stride, padding=padding, groups=channels, bias=False)
        self._fix(channels, kernel)


class BlurDownsample(nn.Sequential):
    """(N, C, H, W) → (N, C, H/2, W/2): reflection padding of 1, then the 3×3 binomial blur at stride 2 (CUT's
    `Downsample`, filter size 3)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.ReflectionPad2d(1), BlurConv(channels, binomial(3), stride=2))


class BlurUpsample(nn.Sequential):
    """(N, C, H, W) → (N, C, 2H, 2W): replication padding of 1, then a transposed convolution with the 4×4 binomial
    kernel × 4 (each output pixel a weighted mean of its neighbours) at stride 2, cropped by 3 a side (CUT's
    `Upsample`, filter size 4: its padding of 2 and one-pixel crop a side)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.ReplicationPad2d(1), BlurTransposed(channels, binomial(4) * 4, stride=2, padding=3))
