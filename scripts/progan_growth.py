"""A progressive run's growth in one picture: one row per resolution, the same fixed latents in every row.

    python scripts/progan_growth.py RUN --out samples/progan_growth.png [--columns 8]

Each row is the first row of the last preview written at that resolution, normally at the end of its stabilising
phase (the trainer writes a preview at every phase's end; previews draw fixed latents at the resolution being
trained, upscaled to the final size), labelled with its resolution. A run stopped before its final resolution
shows the resolutions it reached.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from translate.imageio import label_rows, save_image
from translate.training.curves import read_metrics

PADDING = 2  # make_grid's border between and around tiles


def last_previews(run: Path) -> dict[int, Path]:
    """Resolution → the last preview written while training at it. A step's resolution is that of the first log
    record at or after it (records never span two phases, since every phase's end is logged)."""
    records = [(int(r["step"]), int(r["resolution"])) for r in read_metrics(run / "metrics.jsonl") if "resolution" in r]
    if not records:
        raise SystemExit(f"{run}/metrics.jsonl logs no resolution: is this a progressive (progan) run?")
    chosen: dict[int, Path] = {}
    for preview in sorted((run / "previews").glob("step_*.png")):
        step = int(preview.stem.split("_")[1])
        later = [res for logged, res in records if logged >= step]
        chosen[later[0] if later else records[-1][1]] = preview  # sorted by step: the last one wins
    return chosen


def growth_picture(run: Path, columns: int) -> np.ndarray:
    rows, labels, height = [], [], 0
    for resolution, preview in sorted(last_previews(run).items()):
        grid = np.asarray(Image.open(preview).convert("RGB"))
        # Tiles are square, so a row's height is the grid's width over its columns less the padding.
        tile = (grid.shape[1] - PADDING) // 8 - PADDING
        height = tile
        rows.append(grid[: tile + 2 * PADDING, : columns * (tile + PADDING) + PADDING])
        labels.append(f"{resolution} px")
    # Stack the rows, sharing the border between them as make_grid does.
    picture = np.concatenate([rows[0]] + [row[PADDING:] for row in rows[1:]], axis=0)
    return label_rows(picture, labels, height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a progan run folder")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--columns", type=int, default=8, help="samples per row (at most 8)")
    args = parser.parse_args()
    picture = growth_picture(args.run, min(8, max(1, args.columns)))
    save_image(args.out, picture)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
