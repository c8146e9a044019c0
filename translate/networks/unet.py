"""U-Net generator (Ronneberger et al. 2015) as used by pix2pix (Isola et al. 2017, section 3.2.1).

An encoder of stride-2 4×4 convolutions (C64-C128-C256-C512-C512-...) down to a small bottleneck (1×1 for the
paper's 8 levels at 256 px) and a mirrored decoder of stride-2 transposed convolutions; decoder level i receives
the encoder's level-i activations concatenated to its input (skip connections), so low-level structure such as
edges passes straight through. LeakyReLU 0.2 in the encoder, ReLU in the decoder, batch norm except on the
outermost encoder layer and the bottleneck, Tanh output. Dropout 0.5 in the decoder's 512-channel levels below
the bottleneck is the model's only noise (the paper feeds no z).

The layout follows the reference implementation, so its pretrained weights load after a key renaming
(deploy/official.py): level 0 is the outermost, `down[i]` and `up[i]` are one level's encoder and decoder layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.networks.layers import Norm, checkpointed, norm_layer, uses_bias

MAX_DEPTH = 8  # the paper's U-Net-256: 256 px reach a 1×1 bottleneck after 8 halvings


def unet_depth(image_size: int) -> int:
    """Levels for square training crops of `image_size`: one halving per factor of two, at most 8.

    256 → 8 (1×1 bottleneck, the paper's), 128 → 7, 64 → 6, 96 → 5 (3×3 bottleneck).
    """
    depth = 0
    while depth < MAX_DEPTH and image_size % 2 ** (depth + 1) == 0:
        depth += 1
    return depth


def level_widths(depth: int, base_channels: int) -> list[int]:
    """Encoder output channels per level: 64, 128, 256, then 512 for every deeper level (at base 64)."""
    return [base_channels * min(2**i, 8) for i in range(depth)]


class UnetGenerator(nn.Module):
    """Image-to-image generator: (N, in_channels, H, W) in [-1, 1] → (N, out_channels, H, W) in [-1, 1].

    H and W must be multiples of `stride` = 2**depth; inference pads and crops around that. With
    `gradient_checkpointing` set, training keeps only each level's output and recomputes the rest in backward.
    """

    gradient_checkpointing = False

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        *,
        depth: int = MAX_DEPTH,
        base_channels: int = 64,
        norm: Norm = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"a U-Net needs at least 2 levels, got depth {depth}")
        self.depth, self.stride = depth, 2**depth
        bias = uses_bias(norm)
        widths = level_widths(depth, base_channels)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        for i, inner in enumerate(widths):
            outermost, innermost = i == 0, i == depth - 1
            outer = widths[i - 1] if i else in_channels
            # Encoder: (LeakyReLU) conv (norm). Not in place: the level's input is also a skip connection.
            down: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2)]
            down.append(nn.Conv2d(outer, inner, 4, stride=2, padding=1, bias=bias))
            if not (outermost or innermost):  # the bottleneck has no norm (1×1 at batch 1 would zero it)
                down.append(norm_layer(norm, inner))
            self.down.append(nn.Sequential(*down))
            # Decoder: ReLU, transposed conv on [skip, inner output] (only the inner output at the bottleneck).
            up_in = inner if innermost else 2 * inner
            up_out = out_channels if outermost else outer
            up: list[nn.Module] = [
                nn.ReLU(),
                nn.ConvTranspose2d(up_in, up_out, 4, stride=2, padding=1, bias=bias or outermost),
            ]
            up.append(nn.Tanh() if outermost else norm_layer(norm, up_out))
            # Dropout where the reference puts it: the 512-wide levels between the bottleneck and level 3
            # (three decoder layers at depth 8, as in the paper's CD512-CD1024-CD1024).
            if dropout > 0 and 4 <= i <= depth - 2:
                up.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*up))

    def _run(self, block: nn.Module, x: Tensor) -> Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpointed(block, x)
        return block(x)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.down:
            x = self._run(block, x)
            skips.append(x)  # level i's encoder output, (N, widths[i], H / 2**(i+1), W / 2**(i+1))
        x = self._run(self.up[-1], skips.pop())
        for i in reversed(range(self.depth - 1)):
            x = self._run(self.up[i], torch.cat([skips[i], x], dim=1))  # skip first, as in the reference
        return x
