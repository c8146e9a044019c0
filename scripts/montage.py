"""Sample grids side by side in one picture, for the results pages.

    python scripts/montage.py /tmp/compare-digits/{progan,lapgan}.png /tmp/compare-glyphs/{progan,lapgan}.png \
        --columns 2 --out samples/equal-time-multiscale.png

Images are placed row by row, `--columns` to a row, each shrunk by a whole factor (box filter) to about the
height of the smallest, on a white background with a gap between them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from translate.imageio import save_image

GAP = 8  # px of white between and around the pictures


def montage(paths: list[Path], columns: int) -> np.ndarray:
    pictures = [Image.open(p).convert("RGB") for p in paths]
    height = min(p.height for p in pictures)
    scaled = []
    for picture in pictures:
        factor = max(1, round(picture.height / height))  # e.g. a grid of 64 px samples beside one of 32 px: ½
        size = (picture.width // factor, picture.height // factor)
        scaled.append(np.asarray(picture.resize(size, Image.Resampling.BOX) if factor > 1 else picture))
    cell_h, cell_w = max(p.shape[0] for p in scaled), max(p.shape[1] for p in scaled)
    rows = -(-len(scaled) // columns)
    canvas = np.full((GAP + rows * (cell_h + GAP), GAP + columns * (cell_w + GAP), 3), 255, np.uint8)
    for i, picture in enumerate(scaled):
        top, left = GAP + (i // columns) * (cell_h + GAP), GAP + (i % columns) * (cell_w + GAP)
        canvas[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    gray = (canvas[..., :1] == canvas).all()
    return canvas[..., :1] if gray else canvas  # grayscale pictures make a one-channel file, half the size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--columns", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    save_image(args.out, montage(args.images, max(1, args.columns)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
