"""A progressive run's growth in one picture: one row per resolution, the same fixed latents in every row.

    python scripts/progan_growth.py RUN --out samples/progan_growth.png [--columns 8]

Each row is the first row of the preview written at the end of that resolution's last phase (the trainer writes
a preview at every phase's end; previews draw fixed latents at the resolution being trained, upscaled to the final
size), labelled with its resolution. A run stopped before its final resolution shows the resolutions it reached.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from translate.imageio import label_rows, save_image
from translate.train.curves import read_metrics

PADDING = 2  # make_grid's border between and around tiles


def last_steps(run: Path) -> dict[int, int]:
    """Resolution → the last logged step trained at it (phase ends are always logged)."""
    steps: dict[int, int] = {}
    for record in read_metrics(run / "metrics.jsonl"):
        if "resolution" in record:
            steps[int(record["resolution"])] = int(record["step"])
    if not steps:
        raise SystemExit(f"{run}/metrics.jsonl logs no resolution: is this a progressive (progan) run?")
    return steps


def growth_picture(run: Path, columns: int) -> np.ndarray:
    rows, labels, height = [], [], 0
    for resolution, step in sorted(last_steps(run).items()):
        preview = run / "previews" / f"step_{step:08d}.png"
        if not preview.is_file():
            raise SystemExit(f"{preview} is missing: the trainer writes one at every phase's end")
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
