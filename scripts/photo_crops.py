"""Write random crops of the two real photographs that ship with scikit-learn (china.jpg, flower.jpg).

They are the only real colour photos available offline here; random crops at random scales give a folder of
varied natural-image content for benchmarks and int8 calibration. The unpaired layout (trainA = china crops,
trainB = flower crops) trains a CycleGAN whose weights see real photo statistics.

    python scripts/photo_crops.py --out /tmp/photos --layout unpaired --n 200 --size 128
    python scripts/photo_crops.py --out /tmp/bench256 --layout flat --n 64 --size 256 --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def source_photos() -> dict[str, Image.Image]:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise SystemExit("scikit-learn is needed for its sample photos: pip install scikit-learn") from None
    photos = load_sample_images()
    return {
        Path(name).stem: Image.fromarray(image) for name, image in zip(photos.filenames, photos.images, strict=True)
    }


def random_crop(photo: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """A square crop of 40-100% of the shorter side at a random place, resized to `size`, maybe mirrored."""
    w, h = photo.size
    side = int(min(w, h) * rng.uniform(0.4, 1.0))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BICUBIC)
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--layout", choices=("flat", "unpaired"), default="flat")
    parser.add_argument("--n", type=int, default=64, help="crops per folder")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    photos = source_photos()
    if args.layout == "unpaired":
        folders = {"trainA": [photos["china"]], "trainB": [photos["flower"]]}
    else:
        folders = {"": list(photos.values())}
    for folder, sources in folders.items():
        target = args.out / folder
        target.mkdir(parents=True, exist_ok=True)
        for i in range(args.n):
            crop = random_crop(sources[i % len(sources)], args.size, rng)
            crop.save(target / f"crop_{i:04d}.jpg", quality=92)
    print(f"wrote {args.n * len(folders)} crops of {args.size} px to {args.out}")


if __name__ == "__main__":
    main()
