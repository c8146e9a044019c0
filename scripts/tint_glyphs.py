"""Make the quick-start demo: the ming2kai glyphs with domain B redrawn in coloured ink on a tinted page.

Domain A (trainA, testA) is copied unchanged: Ming glyphs, black on white. Domain B (trainB, testB) is the Kai
glyphs with each grey level v mapped to page * v/255 + ink * (1 - v/255), so anti-aliased edges stay smooth and
ink stays ink (its grey mean is below 128, the ink threshold of `translate evaluate`). A CycleGAN then has to
change both the page and the ink as well as the stroke style, which is plain to see after a few hundred steps.
File names are kept, so testA/testB stay paired for held-out scoring.

This made the committed samples/quickstart (from the committed samples/ming2kai):
    python scripts/tint_glyphs.py --src samples/ming2kai --out samples/quickstart

and, after the README's quick start had translated testA, this made samples/quickstart.png (held-out Ming input,
CycleGAN's output, the real tinted Kai glyph; one column per character):
    python scripts/tint_glyphs.py --picture samples/quickstart.png --outputs samples/quickstart/testA_a2b
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from translate.imageio import find_images, load_image, make_grid, save_image

INK, PAGE = "1e3a8c", "f6eed7"  # indigo ink, cream page


def rgb(text: str) -> np.ndarray:
    text = text.lstrip("#")
    if len(text) != 6:
        raise argparse.ArgumentTypeError(f"colour must be 6 hex digits, got {text!r}")
    return np.array([int(text[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)


def tint(path: Path, out: Path, ink: np.ndarray, page: np.ndarray) -> None:
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)[..., None] / 255.0
    image = page * grey + ink * (1.0 - grey)
    Image.fromarray(np.round(image).astype(np.uint8), "RGB").save(out, optimize=True)


def picture(path: Path, data: Path, outputs: Path) -> None:
    """Three rows: the held-out inputs (data/testA), their translations (outputs, same names), the real testB."""
    names = [image.name for image in find_images(data / "testA")]
    rows = [load_image(folder / name) for folder in (data / "testA", outputs, data / "testB") for name in names]
    save_image(path, make_grid(np.stack(rows), ncols=len(names)))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("samples/ming2kai"), help="trainA/trainB/testA/testB")
    parser.add_argument("--out", type=Path, default=Path("samples/quickstart"))
    parser.add_argument("--ink", type=rgb, default=rgb(INK), help=f"domain B ink, hex RGB (default {INK})")
    parser.add_argument("--page", type=rgb, default=rgb(PAGE), help=f"domain B page, hex RGB (default {PAGE})")
    parser.add_argument("--picture", type=Path, help="instead: write a picture of OUT/testA, OUTPUTS and OUT/testB")
    parser.add_argument("--outputs", type=Path, help="with --picture: the translated OUT/testA images")
    args = parser.parse_args(argv)
    if args.picture:
        picture(args.picture, args.out, args.outputs or args.out / "testA_a2b")
        return
    for split in ("train", "test"):
        source_a, source_b = args.src / f"{split}A", args.src / f"{split}B"
        target_a, target_b = args.out / f"{split}A", args.out / f"{split}B"
        target_a.mkdir(parents=True, exist_ok=True)
        target_b.mkdir(parents=True, exist_ok=True)
        for path in sorted(source_a.glob("*.png")):
            shutil.copyfile(path, target_a / path.name)
        for path in sorted(source_b.glob("*.png")):
            tint(path, target_b / path.name, args.ink, args.page)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
