"""An unpaired translation benchmark with a known answer: domain B is a fixed image filter applied to photographs.

From the colour photographs that scikit-learn and scikit-image ship (offline), one task per filter:

    DIR/<filter>/trainA   random crops of the training photographs
    DIR/<filter>/trainB   the filter applied to OTHER random crops of the same photographs (no trainB image is the
                          filtered twin of a trainA image, so the data is truly unpaired)
    DIR/<filter>/testA    crops of held-out photographs, which no training crop came from
    DIR/<filter>/testB    the true filtered versions of exactly those crops, under the same names

Filters (numpy and Pillow only, deterministic):

    tone      a warm colour grade: an S tone curve, red raised and blue lowered, faded shadows, then a slight
              [1 2 1] softening. Nearly a per-pixel colour map: the easy task.
    stylise   a poster/cartoon look: smoothed, posterised to 4 levels per channel, with dark lines where the
              smoothed luma has strong edges. Needs edges found and colours quantised: the hard task.

The same command makes the same bytes (fixed seeds; crops do not depend on which filters are made). Make it, train
on it and score the held-out crops, where "output = input" is the figure a translator must beat:

    python scripts/unpaired_benchmark.py make --out /tmp/unpaired
    translate train /tmp/unpaired/tone --recipe cyclegan --preset 128px --out runs
    translate apply /tmp/unpaired/tone/testA --model runs/tone --out /tmp/tone-out --ext png
    translate evaluate runs/tone --input /tmp/unpaired/tone/testA --real /tmp/unpaired/tone/testB
    translate evaluate /tmp/tone-out --input /tmp/unpaired/tone/testA --real /tmp/unpaired/tone/testB

(the last scores the applied images as a folder, the same figures; any tool's outputs can be scored so.)
Needs scikit-image (the `dev` extra) and scikit-learn.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# The photographs, by name. Held out: no training crop comes from these, so testA is unseen content.
TRAINING = ("astronaut", "china", "flower", "hubble_deep_field", "immunohistochemistry", "motorcycle")
HELD_OUT = ("chelsea", "coffee", "rocket")
TRAIN_CROPS = 400  # per domain: a few hundred 128 px crops, CycleGAN's datasets hold 1-2 thousand
TEST_CROPS = 60
CROP_SHARE = (0.35, 0.9)  # a crop's side, as a share of the photo's shorter side
STREAMS = {"trainA": 0, "trainB": 1, "test": 2}  # independent seeded draws, so one set never shifts another

# tone's settings
S_CURVE = 0.6  # x + a x(1-x)(2x-1): darker darks, brighter lights, 0, 0.5 and 1 fixed; monotone for a < 1
WARM = (1.12, 1.0, 0.80)  # R, G, B gains
FADE = 0.05  # black lifted to 5%: a faded-film shadow
# stylise's settings
LEVELS = 4
EDGE = 0.12  # Sobel magnitude of the smoothed luma (a full black-to-white step is 1) that draws a line
LINE = 0.08  # the lines' brightness


def _blur(x: np.ndarray) -> np.ndarray:
    """The separable [1 2 1] / 4 binomial blur of (H, W, C) floats, edges replicated."""
    p = np.pad(x, ((1, 1), (0, 0), (0, 0)), mode="edge")
    x = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    p = np.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def tone(image: np.ndarray) -> np.ndarray:
    """The warm grade of a uint8 RGB (H, W, 3) image: tone curve, channel gains, faded shadows, softening."""
    x = image.astype(np.float64) / 255
    x = x + S_CURVE * x * (1 - x) * (2 * x - 1)
    x = np.clip(x * np.array(WARM), 0, 1)
    x = FADE + (1 - FADE) * x
    return _to_uint8(_blur(x))


def stylise(image: np.ndarray) -> np.ndarray:
    """The poster look of a uint8 RGB (H, W, 3) image: smoothed, posterised, with dark lines on strong edges."""
    smooth = _blur(_blur(image.astype(np.float64) / 255))  # noise would otherwise speckle levels and lines
    poster = np.minimum(np.floor(smooth * LEVELS), LEVELS - 1) / (LEVELS - 1)
    # Elementwise luma (not a matrix product, whose summation order may vary between BLAS builds).
    luma = np.pad(0.299 * smooth[..., 0] + 0.587 * smooth[..., 1] + 0.114 * smooth[..., 2], 1, mode="edge")
    gx = (luma[:-2, 2:] + 2 * luma[1:-1, 2:] + luma[2:, 2:]) - (luma[:-2, :-2] + 2 * luma[1:-1, :-2] + luma[2:, :-2])
    gy = (luma[2:, :-2] + 2 * luma[2:, 1:-1] + luma[2:, 2:]) - (luma[:-2, :-2] + 2 * luma[:-2, 1:-1] + luma[:-2, 2:])
    edges = np.sqrt(gx**2 + gy**2) / 4 > EDGE  # Sobel's taps sum to 4 a side
    poster[edges] = LINE
    return _to_uint8(poster)


FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"tone": tone, "stylise": stylise}


def photographs() -> dict[str, np.ndarray]:
    """The benchmark's photographs as uint8 RGB arrays, by name."""
    try:
        from skimage import data
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise SystemExit(
            f"{exc.name} is needed for its sample photographs: pip install scikit-image scikit-learn"
        ) from None
    sklearn = load_sample_images()
    photos = {Path(name).stem: image for name, image in zip(sklearn.filenames, sklearn.images, strict=True)}
    photos |= {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "hubble_deep_field": data.hubble_deep_field(),
        "immunohistochemistry": data.immunohistochemistry(),
        "motorcycle": data.stereo_motorcycle()[0],  # the left view; the right one is nearly the same picture
        "rocket": data.rocket(),
    }
    return {name: np.ascontiguousarray(photos[name][..., :3]) for name in (*TRAINING, *HELD_OUT)}


Box = tuple[str, int, int, int, bool]  # (photo, x, y, side, mirrored)


def draw_boxes(photos: dict[str, np.ndarray], names: Sequence[str], rng: np.random.Generator) -> Iterator[Box]:
    """Square crops taking the named photos in turn, each at a random place and side, mirrored or not."""
    for name in itertools.cycle(names):
        h, w = photos[name].shape[:2]
        side = int(min(h, w) * rng.uniform(*CROP_SHARE))
        yield (
            name,
            int(rng.integers(0, w - side + 1)),
            int(rng.integers(0, h - side + 1)),
            side,
            bool(rng.random() < 0.5),
        )


def crop(photo: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The box of the photo as a uint8 (size, size, 3) image (Lanczos when shrinking, else bicubic)."""
    _, x, y, side, mirrored = box
    method = Image.Resampling.LANCZOS if side > 2 * size else Image.Resampling.BICUBIC
    image = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), method)
    return np.asarray(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else image)


def take(
    photos: dict[str, np.ndarray],
    names: Sequence[str],
    rng: np.random.Generator,
    *,
    count: int,
    size: int,
    prefix: str,
    keep: Callable[[np.ndarray], bool] = lambda image: True,
) -> dict[str, np.ndarray]:
    """`count` crops of the named photos as file name ("a0001-astronaut.png") → image, passing over those that
    `keep` refuses."""
    found: dict[str, np.ndarray] = {}
    for box in draw_boxes(photos, names, rng):
        if len(found) == count:
            break
        image = crop(photos[box[0]], box, size)
        if keep(image):
            found[f"{prefix}{len(found):04d}-{box[0]}.png"] = image
    return found


@dataclass
class Summary:
    """What `build` wrote: images per folder of each task, the crop size and the photographs used."""

    out: Path
    size: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # filter → folder → images
    training: tuple[str, ...] = TRAINING
    held_out: tuple[str, ...] = HELD_OUT


def build(
    out: Path,
    *,
    size: int = 128,
    filters: Sequence[str] = tuple(FILTERS),
    train: int = TRAIN_CROPS,
    test: int = TEST_CROPS,
    seed: int = 0,
) -> Summary:
    """Write one task per filter under `out` (see the module's docstring) and return what was written."""
    for name in filters:
        if (out / name).exists() and any((out / name).iterdir()):
            raise SystemExit(f"{out / name} is not empty: remove it or choose another --out")
    photos = photographs()

    def rng(stream: str) -> np.random.Generator:
        return np.random.default_rng([seed, STREAMS[stream]])

    train_a = take(photos, TRAINING, rng("trainA"), count=train, size=size, prefix="a")
    # Unpaired by construction: a B crop whose filtered pixels equal a filtered A crop under any filter (the same
    # box, or two all-dark crops of the star field) is passed over. Every filter is checked, so the crops do not
    # depend on which tasks are made.
    twins = {name: {apply(image).tobytes() for image in train_a.values()} for name, apply in FILTERS.items()}

    def unpaired(image: np.ndarray) -> bool:
        return not any(apply(image).tobytes() in twins[name] for name, apply in FILTERS.items())

    train_b = take(photos, TRAINING, rng("trainB"), count=train, size=size, prefix="b", keep=unpaired)
    test_a = take(photos, HELD_OUT, rng("test"), count=test, size=size, prefix="t")
    summary = Summary(out, size)
    for name in filters:
        apply = FILTERS[name]
        folders = {
            "trainA": train_a,
            "trainB": {file: apply(image) for file, image in train_b.items()},
            "testA": test_a,
            "testB": {file: apply(image) for file, image in test_a.items()},
        }
        for folder, images in folders.items():
            target = out / name / folder
            target.mkdir(parents=True, exist_ok=True)
            for file, image in images.items():
                Image.fromarray(image).save(target / file)
        summary.counts[name] = {folder: len(images) for folder, images in folders.items()}
    return summary


def report(summary: Summary) -> str:
    """The summary and the commands that train and score on each task."""
    lines = [
        f"wrote {summary.out} ({summary.size} px crops)",
        f"  training photographs: {', '.join(summary.training)}",
        f"  held-out photographs (testA/testB only): {', '.join(summary.held_out)}",
    ]
    for name, counts in summary.counts.items():
        task = summary.out / name
        lines += [
            f"{name}: " + ", ".join(f"{folder} {count}" for folder, count in counts.items()),
            f"  translate train {task} --recipe cyclegan --preset 128px --out runs",
            f"  translate evaluate runs/{name} --input {task / 'testA'} --real {task / 'testB'}",
        ]
    lines.append('"output = input" (printed beside each paired figure) is the floor a translator must beat.')
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write the benchmark's tasks")
    make.add_argument("--out", type=Path, required=True, help="folder that gets one task per filter")
    make.add_argument("--size", type=int, default=128, help="crop size in px (default 128)")
    make.add_argument("--filter", choices=(*FILTERS, "all"), default="all", help="which task (default all)")
    make.add_argument("--train", type=int, default=TRAIN_CROPS, help=f"crops per training domain ({TRAIN_CROPS})")
    make.add_argument("--test", type=int, default=TEST_CROPS, help=f"held-out crops ({TEST_CROPS})")
    make.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    filters = tuple(FILTERS) if args.filter == "all" else (args.filter,)
    summary = build(args.out, size=args.size, filters=filters, train=args.train, test=args.test, seed=args.seed)
    print(report(summary))


if __name__ == "__main__":
    main()
