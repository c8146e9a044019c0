"""PatchGAN discriminator (pix2pix, CycleGAN): a fully convolutional net that scores overlapping patches.

With 3 strided layers (C64-C128-C256-C512) each output scores a 70×70 receptive field. The first layer has no
normalisation (DCGAN rule), LeakyReLU 0.2 throughout, one logit per patch (no sigmoid: the loss decides).
"""

from __future__ import annotations

from torch import Tensor, nn

from translate.networks.layers import Norm, norm_layer, uses_bias


class PatchDiscriminator(nn.Module):
    """(N, in_channels, H, W) -> (N, 1, H', W') patch logits; H' = H/8 - 2 for 3 layers."""

    def __init__(
        self, in_channels: int = 3, *, base_channels: int = 64, num_layers: int = 3, norm: Norm = "instance"
    ) -> None:
        super().__init__()
        bias = uses_bias(norm)
        c = base_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for i in range(1, num_layers + 1):
            prev, mult = mult, min(2**i, 8)
            stride = 2 if i < num_layers else 1  # the last C block keeps resolution (70×70 field for 3 layers)
            layers += [
                nn.Conv2d(c * prev, c * mult, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, c * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(c * mult, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
