"""Tiled translation: images of any size through an image-to-image network in overlapping tiles — **no torch**.

A whole-image forward pass needs memory in proportion to the image's area (a ResNet-9 CycleGAN generator about
1 KB per pixel: 11.4 GB for a 4000×3000 photo). Here a large image is translated in tiles of a fixed size, so
memory stays at one batch of tiles, the uint8 input and output, and a float32 band one tile high. Three things
make the tiles agree with each other and with whole-image translation:

* **Overlap beyond the receptive field.** An output pixel depends on the inputs within `margin` px of it (the
  network's receptive field, from its layers: `receptive_margin`). Tiles overlap by at least 2·margin + BLEND px,
  and a tile's outputs within `margin` of an edge it shares with a neighbour (where the tile's own padding
  reached them) get weight 0. Tiles start at multiples of the network's stride, so each samples the image on
  the whole image's grid, and a tile's remaining outputs are the whole-image outputs.
* **A smooth hand-over.** In the middle of each overlap a raised-cosine ramp (sin² up, 1 − sin² down) over BLEND
  px passes from one tile to the next; the weights of overlapping tiles sum to exactly 1.
* **One set of normalisation statistics per image.** Instance normalisation (the CycleGAN ResNet) normalises by
  the per-channel mean and variance of each input, which would differ from tile to tile (seams) and from the
  whole image. A first pass runs the network once on a copy of the image downscaled to about STATS_PIXELS and
  records every instance norm's input statistics; every tile is then run with those fixed. Accumulating exact
  full-resolution statistics instead takes one pass over all tiles per instance-norm layer (the ResNet-9 has
  22), each up to that layer: about 11 whole-image forwards. Batch norm in eval mode (pix2pix) is already fixed.

A backend offers this through a `TileBackend` (the PyTorch one in `models.py`, the ONNX Runtime one in
`onnx_tiling.py`); this module does the geometry and the orchestration for both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from translate.imageio import pad_to_multiple, resize, to_float, to_uint8

# Per instance-norm layer, in execution order: the mean and (biased) variance of its input, each (C,) float32.
Stats = list[tuple[np.ndarray, np.ndarray]]

BLEND = 32  # px of raised-cosine ramp between two tiles, inside the overlap where both tiles are exact
DEFAULT_TILE = 640  # px: the tile side for automatic tiling (BENCHMARKS.md: peak memory against overlap overhead)
# Images with more pixels are tiled without being asked. A trade: below it one whole-image pass is faster (tiles
# run 2.15× the pixels at 640 px for a ResNet-9) and needs at most about 4 GB with that network (whole-image memory
# grows with the area: 11.4 GB at 12 Mpx), against 1.2–1.3 GB tiled at any size (BENCHMARKS.md, 2026-12-02).
AUTO_PIXELS = 4_000_000
# The downscaled copy the statistics come from has about this many pixels: as many as a tile, so the statistics
# pass needs no more memory than a tile does; the more pixels, the closer to the whole image's (BENCHMARKS.md).
STATS_PIXELS = DEFAULT_TILE * DEFAULT_TILE
TILE_BATCH_PIXELS = DEFAULT_TILE * DEFAULT_TILE  # a batch of smaller tiles holds at most one default tile's pixels


@dataclass(frozen=True)
class SpatialLayer:
    """A layer that moves pixels, along one axis, as receptive-field arithmetic sees it."""

    kind: Literal["conv", "transposed", "pad"]
    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad: int = 0  # conv / transposed: its own padding before the first element; pad: elements added before it


def receptive_margin(layers: Iterable[SpatialLayer]) -> int:
    """How far (px) from an output pixel the inputs it depends on can lie, for these layers applied in order.

    Feature o of each tensor depends on the input pixels in [o·jump + lo, o·jump + hi] (jump: image px per
    feature px), tracked layer by layer. Applied to every spatial layer of a network in execution order, this is
    the widest path when skip connections carry no spatial layers of their own (the ResNet's residual blocks,
    the U-Net's skips), so it bounds the whole network.
    """
    jump, lo, hi = 1.0, 0.0, 0.0
    for layer in layers:
        reach = (layer.kernel - 1) * layer.dilation
        if layer.kind == "pad":  # output q is input q - pad
            lo, hi = lo - layer.pad * jump, hi - layer.pad * jump
        elif layer.kind == "conv":  # output o reads inputs o·stride - pad + t·dilation, t in [0, kernel)
            lo, hi = lo - layer.pad * jump, hi + (reach - layer.pad) * jump
            jump *= layer.stride
        else:  # transposed: output o reads the inputs i with i·stride in [o + pad - reach, o + pad]
            jump /= layer.stride
            lo, hi = lo + (layer.pad - reach) * jump, hi + layer.pad * jump
    return math.ceil(max(-lo, hi, 0.0))


class TileBackend(Protocol):
    """What tiled translation needs of a backend: its receptive field and runs with given statistics."""

    margin: int  # px: receptive_margin of the network

    def statistics(self, image: np.ndarray) -> Stats:
        """Every instance norm's input statistics for one image, (1, C, H, W) in [-1, 1]; [] when it has none."""
        ...

    def __call__(self, batch: np.ndarray, stats: Stats) -> np.ndarray:
        """(N, C, H, W) in [-1, 1] → the same, every instance norm using `stats` instead of its input's."""
        ...


def wants_tiles(height: int, width: int, tile: int | None) -> bool:
    """Whether an image is tiled: `tile` None is automatic (above AUTO_PIXELS), 0 never, N above N px a side."""
    if tile is None:
        return height * width > AUTO_PIXELS
    return tile > 0 and max(height, width) > tile


def overlap(margin: int) -> int:
    """The least overlap of two neighbouring tiles: both margins and the ramp between them."""
    return 2 * margin + BLEND


def tile_side(requested: int, margin: int, stride: int) -> int:
    """The tile side used for a request: a multiple of the stride, raised to what the margin needs.

    The smallest tile keeps at least as much as it overlaps (at most 4× the pixels of whole-image translation),
    and leaves room for consecutive ramps not to meet (see `tile_starts`).
    """
    least = overlap(margin)
    smallest = max(2 * least, least + 2 * BLEND + stride)
    return max(requested // stride, -(-smallest // stride)) * stride


def tile_starts(length: int, tile: int, least_overlap: int, stride: int) -> list[int]:
    """Where tiles of `tile` px start along an axis of `length` px (both multiples of `stride`), so that they
    cover it exactly, neighbours overlap by at least `least_overlap`, and all steps are within one stride.

    Steps are made as even as possible in units of the stride, so with three or more tiles every step is at
    least half the largest allowed one (tile - least_overlap); `tile_side` makes that at least BLEND.
    """
    if length <= tile:
        return [0]
    span, longest = (length - tile) // stride, (tile - least_overlap) // stride
    steps = -(-span // longest)
    small, extra = divmod(span, steps)
    starts = [0]
    for index in range(steps):
        starts.append(starts[-1] + (small + (index < extra)) * stride)
    return starts


def tile_weights(starts: list[int], tile: int) -> list[np.ndarray]:
    """Each tile's blend weight along the axis, (tile,) float64; at every position the tiles' weights sum to 1.

    Between tiles k and k+1 the hand-over is a raised-cosine ramp of BLEND px centred in their overlap; outside
    it the weight is 1 or 0, so the `margin` px at a shared edge get 0 (the overlap is at least 2·margin + BLEND).
    Edges on the image border keep weight 1: the network pads there exactly as it does for the whole image.
    """
    positions = np.arange(tile, dtype=np.float64) + 0.5  # pixel centres, tile-local
    weights = []
    for k, start in enumerate(starts):
        weight = np.ones(tile)
        if k > 0:  # rise in the overlap with the previous tile
            weight *= _rise(start + positions, (starts[k - 1] + tile + start) / 2)
        if k + 1 < len(starts):  # fall in the overlap with the next tile
            weight *= 1.0 - _rise(start + positions, (start + tile + starts[k + 1]) / 2)
        weights.append(weight)
    return weights


def _rise(x: np.ndarray, centre: float) -> np.ndarray:
    """0 before centre - BLEND/2, sin² up to 1 at centre + BLEND/2."""
    t = np.clip((x - centre) / BLEND + 0.5, 0.0, 1.0)
    return np.sin(t * (np.pi / 2)) ** 2


@dataclass(frozen=True)
class TileGrid:
    """Tiles over an image padded to the stride: starts and blend weights along each axis."""

    height: int  # tile height, px
    width: int  # tile width, px
    tops: list[int]
    lefts: list[int]
    row_weights: list[np.ndarray]  # (height,) per tile row
    col_weights: list[np.ndarray]  # (width,) per tile column


def tile_grid(height: int, width: int, tile: int, margin: int, stride: int) -> TileGrid:
    """The grid for a (height, width) image, already padded to multiples of `stride`."""
    side = tile_side(tile, margin, stride)
    th, tw = min(side, height), min(side, width)
    tops = tile_starts(height, th, overlap(margin), stride)
    lefts = tile_starts(width, tw, overlap(margin), stride)
    return TileGrid(th, tw, tops, lefts, tile_weights(tops, th), tile_weights(lefts, tw))


def translate_tiled(
    backend: TileBackend,
    image: np.ndarray,
    *,
    stride: int,
    tile: int,
    minimum: int,
    stats: Stats | None = None,
) -> np.ndarray:
    """uint8 (H, W, C) → uint8 (H, W, C), translated in overlapping tiles of about `tile` px.

    The image is padded on the bottom/right as whole-image translation pads it (to multiples of `stride`, at
    least `minimum` px; `pad_to_multiple`), one tile at a time. `stats` (from `backend.statistics`) default to a
    copy of the image downscaled to about STATS_PIXELS, or the image itself when it is that small or fits in one
    tile. Tile rows are accumulated into a float32 band of the padded width and written out as uint8 as soon as
    no later row reaches them.
    """
    h, w, channels = image.shape
    ph, pw = (max(n, minimum) + (-max(n, minimum) % stride) for n in (h, w))
    grid = tile_grid(ph, pw, tile, backend.margin, stride)
    if stats is None:
        whole = h * w <= STATS_PIXELS or len(grid.tops) * len(grid.lefts) == 1
        stats = backend.statistics(statistics_input(image, stride, minimum, None if whole else STATS_PIXELS))
    out = np.empty_like(image)
    band = np.zeros((channels, grid.height, pw), np.float32)  # output rows top .. top + tile height, padded
    per_batch = max(1, TILE_BATCH_PIXELS // (grid.height * grid.width))
    for row, (top, row_weight) in enumerate(zip(grid.tops, grid.row_weights, strict=True)):
        for first in range(0, len(grid.lefts), per_batch):
            lefts = grid.lefts[first : first + per_batch]
            crops = np.stack([_padded_crop(image, top, left, grid.height, grid.width) for left in lefts])
            result = backend(to_float(crops), stats)  # (n, C, tile height, tile width)
            for k, left in enumerate(lefts):
                weight = np.outer(row_weight, grid.col_weights[first + k]).astype(np.float32)
                band[:, :, left : left + grid.width] += result[k] * weight
        # Rows above the next tile row's top are final (no later tile reaches them): write, then move the band.
        done = grid.tops[row + 1] - top if row + 1 < len(grid.tops) else grid.height
        end = min(top + done, h)
        out[top:end] = to_uint8(band[:, : end - top, :w])
        band[:, : grid.height - done] = band[:, done:]
        band[:, grid.height - done :] = 0.0
    return out


def _padded_crop(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """image[top : top + height, left : left + width] (H, W, C), padded past the bottom/right image edges as
    `pad_to_multiple` pads the whole image: reflection, or symmetric where the pad is not shorter than the axis."""
    crop = image[top : top + height, left : left + width]
    for axis, size in ((0, height), (1, width)):
        pad = size - crop.shape[axis]
        if pad > 0:
            widths = [(0, 0)] * 3
            widths[axis] = (0, pad)
            crop = np.pad(crop, widths, mode="reflect" if pad < crop.shape[axis] else "symmetric")
    return crop


def statistics_input(image: np.ndarray, stride: int, minimum: int, pixels: int | None) -> np.ndarray:
    """uint8 (H, W, C) → (1, C, H', W') in [-1, 1] for the statistics pass: the image itself (`pixels` None) or a
    copy downscaled to about `pixels` (keeping the aspect ratio), padded as whole-image translation pads it."""
    h, w = image.shape[:2]
    if pixels is not None and h * w > pixels:
        scale = math.sqrt(pixels / (h * w))
        image = resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    return pad_to_multiple(to_float(image[None]), stride, minimum)[0]
