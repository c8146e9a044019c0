"""Paired training data (pix2pix): aligned (A, B) images in either public layout, jittered alike.

Two layouts hold pairs:
- side by side: each file holds A on its left half and B on its right (the pix2pix datasets' train/, val/, test/);
- two folders `A/` and `B/` whose files are matched by relative path without extension (A/x.jpg with B/x.png).

DATA is either a folder of pairs itself or holds `train/` (and `val/` or `test/`, whose first pairs fill the
preview grids), each in either layout. Both halves of a pair are resized to the load size and stacked on the
channel axis before the random crop and flip, so one draw of the jitter moves both alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch.utils.data import Dataset

from translate.data.folders import (
    CACHE_LIMIT_BYTES,
    PreparedDomain,
    decode_all,
    is_gray,
    load_resize,
    pick,
    sample_seed,
    to_chw,
    training_transform,
)
from translate.errors import DataArgumentError, DataError, ImageDecodeError
from translate.imageio import find_images, load_image, resize, to_float

SHOWN_UNMATCHED = 8  # unmatched names listed in the warning; the rest are counted


@dataclass(frozen=True)
class PairSource:
    """Where pairs live: a folder of side-by-side images (`a` and `b` unset), or two folders matched by name."""

    root: Path
    a: Path | None = None
    b: Path | None = None

    @property
    def layout(self) -> str:
        return "side by side" if self.a is None else "A/ and B/ folders"


def _source(folder: Path) -> PairSource:
    if (folder / "A").is_dir() and (folder / "B").is_dir():
        return PairSource(folder, folder / "A", folder / "B")
    return PairSource(folder)


def paired_sources(
    data: Path | None, domain_a: Path | None = None, domain_b: Path | None = None
) -> tuple[PairSource, PairSource | None]:
    """(training pairs, held-out pairs or None) from DATA's layout, or two explicit folders matched by name."""
    if domain_a is not None or domain_b is not None:
        if domain_a is None or domain_b is None:
            raise DataArgumentError("give both --domain-a and --domain-b (their files are paired by name)")
        for folder in (domain_a, domain_b):
            if not folder.is_dir():
                raise DataArgumentError(f"{folder}: no such folder")
        return PairSource(domain_a.parent, domain_a, domain_b), None
    if data is None:
        raise DataArgumentError(
            "give a folder of pairs: side-by-side A|B images, or A/ and B/ folders with matching names"
        )
    if not data.is_dir():
        raise DataArgumentError(f"{data}: no such folder")
    if not (data / "train").is_dir():
        return _source(data), None
    held_out = next((data / name for name in ("val", "test") if (data / name).is_dir()), None)
    return _source(data / "train"), _source(held_out) if held_out else None


def match_names(a: Path, b: Path) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Files of `a` and `b` with the same relative path minus extension: (pairs, names only in a, only in b)."""

    def keyed(root: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in find_images(root):
            found.setdefault(path.relative_to(root).with_suffix("").as_posix(), path)
        return found

    files_a, files_b = keyed(a), keyed(b)
    pairs = [(path, files_b[key]) for key, path in files_a.items() if key in files_b]
    return pairs, sorted(files_a.keys() - files_b.keys()), sorted(files_b.keys() - files_a.keys())


def _halves(image: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side file's left (A) and right (B) halves, as views; an odd middle column is dropped."""
    half = image.shape[1] // 2
    if half == 0:
        raise ImageDecodeError(path, f"{image.shape[1]} px wide: too narrow to hold A|B side by side")
    return image[:, :half], image[:, image.shape[1] - half :]


@dataclass(frozen=True)
class Pairs:
    """Aligned training pairs; `image(i)` is (A, B), uint8 (H, W, C) each (the halves may differ in size)."""

    source: PairSource
    files: list[tuple[Path, ...]]  # (side-by-side file,) or (A file, B file) per pair
    images: list[tuple[np.ndarray, np.ndarray]] | None  # decoded pairs, or None when decoded on demand
    channels: int

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.images is not None:
            return self.images[index]
        return _decode_pair(self.files[index], self.channels)


def _decode_pair(files: tuple[Path, ...], channels: int) -> tuple[np.ndarray, np.ndarray]:
    if len(files) == 1:
        return _halves(load_image(files[0], channels), files[0])
    return load_image(files[0], channels), load_image(files[1], channels)


def _warn_unmatched(source: PairSource, only_a: list[str], only_b: list[str], console: Console) -> None:
    for names, here, there in ((only_a, source.a, source.b), (only_b, source.b, source.a)):
        if names:
            shown = ", ".join(names[:SHOWN_UNMATCHED]) + (", ..." if len(names) > SHOWN_UNMATCHED else "")
            console.print(
                f"[yellow]warning:[/] {len(names)} image(s) in {here} have no file of the same name in {there}, "
                f"left out: {shown}",
                highlight=False,
                soft_wrap=True,
            )


def scan_pairs(
    source: PairSource, channels: int | None, *, console: Console | None = None, limit: int | None = None
) -> Pairs:
    """Find, match and decode the pairs of `source` (the first `limit` only, when given).

    Unreadable files and unmatched names are skipped with a warning; it is an error only when no pair is left.
    `channels=None` decides from the data: 1 when every half is grayscale (R = G = B), else 3.
    """
    console = console or Console(stderr=True)
    if source.a is None:
        files: list[tuple[Path, ...]] = [(path,) for path in find_images(source.root)]
        if not files:
            raise DataError(
                f"{source.root}: no image found; paired data is side-by-side A|B images, or A/ and B/ folders "
                "whose files have matching names"
            )
    else:
        assert source.b is not None
        matched, only_a, only_b = match_names(source.a, source.b)
        if not matched:
            raise DataError(
                f"{source.a} and {source.b}: no file name appears in both ({len(only_a)} and {len(only_b)} images); "
                "pairs are matched by relative path without extension, e.g. A/0001.jpg with B/0001.png"
            )
        _warn_unmatched(source, only_a, only_b, console)
        files = list(matched)
    files = files[:limit] if limit is not None else files
    decoded = iter(decode_all([path for pair in files for path in pair], channels or 3))
    kept, images, skipped = [], [], 0
    for pair in files:
        results = [next(decoded) for _ in pair]
        try:
            for result in results:
                if isinstance(result, ImageDecodeError):
                    raise result
            a, b = _halves(results[0], pair[0]) if len(pair) == 1 else results
        except ImageDecodeError as exc:
            console.print(f"[yellow]warning:[/] skipping the pair of {exc}", highlight=False, soft_wrap=True)
            skipped += 1
            continue
        kept.append(pair)
        images.append((a, b))
    if skipped:
        console.print(f"[yellow]warning:[/] skipped {skipped} unreadable pair(s) in {source.root}", highlight=False)
    if not kept:
        raise DataError(f"{source.root}: no usable pair of images (every file failed to decode)")
    if channels is None:
        channels = 1 if all(is_gray(half) for pair in images for half in pair) else 3
        if channels == 1:
            images = [(np.ascontiguousarray(a[..., :1]), np.ascontiguousarray(b[..., :1])) for a, b in images]
    keep = sum(a.nbytes + b.nbytes for a, b in images) <= CACHE_LIMIT_BYTES
    return Pairs(source=source, files=kept, images=images if keep else None, channels=channels)


def stack_pair(pair: tuple[np.ndarray, np.ndarray], load_size: int) -> np.ndarray:
    """Both halves resized to load_size² and stacked: uint8 (L, L, 2C), A's channels first."""
    return np.concatenate([load_resize(half, load_size) for half in pair], axis=2)


class PairedDataset(Dataset):
    """Sample `counter` → {"A": input, "B": target}, uint8 (C, S, S) crops with the same jitter.

    `swap` makes B the input (training direction b2a).
    """

    def __init__(
        self, pairs: Pairs, *, image_size: int, load_size: int, flip: bool, seed: int, swap: bool = False
    ) -> None:
        self.pairs = PreparedDomain(pairs, functools.partial(stack_pair, load_size=load_size))
        self.channels, self.seed, self.swap = pairs.channels, seed, swap
        self.transform = training_transform(image_size, flip)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, counter: int) -> dict[str, torch.Tensor]:
        stacked = self.pairs.image(pick(self.seed, 0, counter, len(self.pairs)))
        self.transform.set_random_seed(sample_seed(self.seed, 1, counter))
        both = to_chw(self.transform(image=stacked)["image"])  # (2C, S, S): one crop and flip for both halves
        a, b = both[: self.channels], both[self.channels :]
        return {"A": b, "B": a} if self.swap else {"A": a, "B": b}


def preview_pairs(pairs: Pairs, count: int, image_size: int, *, swap: bool = False) -> dict[str, torch.Tensor]:
    """The first `count` pairs resized to image_size², float (N, C, S, S) in [-1, 1]: fixed preview inputs."""
    halves = [pairs.image(i) for i in range(min(count, len(pairs)))]
    a, b = ([resize(pair[k], (image_size, image_size)) for pair in halves] for k in (0, 1))
    tensors = {key: torch.from_numpy(to_float(np.stack(images))) for key, images in (("A", a), ("B", b))}
    return {"A": tensors["B"], "B": tensors["A"]} if swap else tensors
