"""ResNet generator (Johnson et al. 2016) as used by CycleGAN.

c7s1-64, d128, d256, N residual blocks, u128, u64, c7s1-C with reflection padding and instance norm; 9 blocks at
256 px, 6 at 128 px (CycleGAN, appendix 7.2). The two stride-2 downsamplings make the input size a multiple of 4.

`resample` chooses how d128/d256 and u128/u64 change the size: "transposed", CycleGAN's stride-2 convolution and
transposed convolution (the reference layout, whose released weights load by name), or "antialiased", CUT's
(Park et al. 2020): a stride-1 convolution then a fixed blur at stride 2 down, a fixed binomial upsampling then a
stride-1 convolution up (networks/resample.py), which removes the checkerboard artefacts of transposed convolutions.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from translate.networks.layers import Norm, checkpointed, norm_layer, uses_bias
from translate.networks.resample import BlurDownsample, BlurUpsample

Resample = Literal["transposed", "antialiased"]


class ResidualBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), with reflection padding (no border artefacts)."""

    def __init__(self, channels: int, *, norm: Norm = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1].

    H and W must be multiples of `stride` (4); inference pads and crops around that. With `gradient_checkpointing`
    set, training keeps only the activations between stages (stem, each down- and up-sampling layer, each
    residual block, head) and recomputes the rest in the backward pass: about a third more compute for a
    fraction of the activation memory.
    """

    stride = 4
    gradient_checkpointing = False

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        *,
        base_channels: int = 64,
        num_blocks: int = 9,
        norm: Norm = "instance",
        dropout: float = 0.0,
        resample: Resample = "transposed",
    ) -> None:
        super().__init__()
        if resample not in ("transposed", "antialiased"):
            raise ValueError(f"unknown resample {resample!r}: use transposed or antialiased")
        bias = uses_bias(norm)
        c = base_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, c, 7, bias=bias),
            norm_layer(norm, c),
            nn.ReLU(True),
        ]
        # Where each stage starts. A stage's first layer must not modify its input in place (the ReLUs do), or
        # a checkpointed stage would change the tensor the previous one saved.
        starts = [0]
        antialiased = resample == "antialiased"
        for mult in (1, 2):  # d128, d256
            starts.append(len(layers))
            out = c * mult * 2
            if antialiased:
                layers += [nn.Conv2d(c * mult, out, 3, padding=1, bias=bias), norm_layer(norm, out), nn.ReLU(True)]
                layers.append(BlurDownsample(out))
            else:
                layers += [
                    nn.Conv2d(c * mult, out, 3, stride=2, padding=1, bias=bias),
                    norm_layer(norm, out),
                    nn.ReLU(True),
                ]
        for _ in range(num_blocks):
            starts.append(len(layers))
            layers.append(ResidualBlock(c * 4, norm=norm, dropout=dropout))
        for mult in (4, 2):  # u128, u64
            starts.append(len(layers))
            out = c * mult // 2
            if antialiased:
                layers.append(BlurUpsample(c * mult))
                layers += [nn.Conv2d(c * mult, out, 3, padding=1, bias=bias), norm_layer(norm, out), nn.ReLU(True)]
            else:
                layers += [
                    nn.ConvTranspose2d(c * mult, out, 3, stride=2, padding=1, output_padding=1, bias=bias),
                    norm_layer(norm, out),
                    nn.ReLU(True),
                ]
        starts.append(len(layers))
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.stages = tuple(zip(starts, [*starts[1:], len(layers)], strict=True))
        # The encoder's layers whose outputs PatchNCE compares (CUT's nce_layers 0,4,8,12,16 of this layout): the
        # padded input, the first convolution of each downsampling, the 1st and the 5th residual block.
        blocks = starts[3 : 3 + num_blocks]
        found = {0: in_channels, starts[1]: c * 2, starts[2]: c * 4} | {i: c * 4 for i in blocks[:1] + blocks[4:5]}
        self.feature_layers, self.feature_channels = tuple(found), tuple(found.values())

    def forward(self, x: Tensor, encode: tuple[int, ...] | None = None) -> Tensor | list[Tensor]:
        """The translated image; with `encode` (layer indices, e.g. `feature_layers`), the outputs of those layers
        instead, running only the encoder up to the last of them (what CUT's PatchNCE reads)."""
        if encode is not None:
            features = []
            for index, layer in enumerate(self.layers[: max(encode) + 1]):
                x = layer(x)
                if index in encode:
                    features.append(x)
            return features
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return self.layers(x)
        for start, end in self.stages:
            x = checkpointed(self.layers[start:end], x)
        return x
