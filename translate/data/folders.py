"""Training data: finding the two domains, decoding them safely once, and the deterministic jitter.

Samples leave the workers as uint8 (C, H, W) crops, a quarter of the bytes of float pixels; `to_model_range`
turns a batch into floats in [-1, 1] on the training device (on a GPU that is one fused kernel, and the CPU
workers only slice and copy bytes, so small images do not starve it). The deterministic part of the jitter (the
resize to load size) is done once per cached image, not once per sample.

Every sample is addressed by a global counter (0, 1, 2, ... over the whole run) rather than by an epoch-local
index: which image the counter picks and how it is jittered are pure functions of (seed, counter). Resuming at
step s therefore just restarts the counter at s * batch_size and reproduces the uninterrupted run exactly,
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import albumentations as A
import cv2
import numpy as np
import torch
from rich.console import Console
from torch.utils.data import Dataset, Sampler

from translate.errors import DataArgumentError, DataError, ImageDecodeError
from translate.imageio import find_images, load_image, resize, to_float

# Decoded images are kept in memory below this many bytes (typical CycleGAN sets are 0.1-0.5 GB decoded);
# above it they are decoded again on every use.
CACHE_LIMIT_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Domain:
    """The usable images of one domain, decoded once (or just listed when too large to keep)."""

    root: Path
    paths: list[Path]
    images: list[np.ndarray] | None  # uint8 (H, W, C) per path, or None when decoded on demand
    channels: int

    def __len__(self) -> int:
        return len(self.paths)

    def with_channels(self, channels: int) -> Domain:
        """The same images as RGB (a grayscale domain paired with a colour one) or as they are."""
        if channels == self.channels:
            return self
        if (self.channels, channels) != (1, 3):
            raise ValueError(f"cannot turn a {self.channels}-channel domain into {channels} channels")
        images = [np.repeat(im, 3, axis=2) for im in self.images] if self.images is not None else None
        return Domain(root=self.root, paths=self.paths, images=images, channels=3)

    def image(self, index: int) -> np.ndarray:
        if self.images is not None:
            return self.images[index]
        return load_image(self.paths[index], self.channels)


def decode_all(paths: list[Path], channels: int) -> list[np.ndarray | ImageDecodeError]:
    """Decode many files at once; a file that is not a usable image gives its ImageDecodeError instead."""

    def decode(path: Path) -> np.ndarray | ImageDecodeError:
        try:
            return load_image(path, channels)
        except ImageDecodeError as exc:
            return exc

    # Decoding is mostly C code that releases the GIL, so threads use every core.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        return list(pool.map(decode, paths))


def is_gray(image: np.ndarray) -> bool:
    """Whether a decoded RGB image has R = G = B everywhere."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]))


def scan_domain(root: Path, channels: int | None, *, console: Console | None = None, label: str = "") -> Domain:
    """Find and decode every image under `root`; corrupt or non-image files are skipped with a warning each.

    `channels=None` decides from the data: 1 when every image is grayscale (R = G = B), else 3.
    """
    console = console or Console(stderr=True)
    if not root.is_dir():
        raise DataArgumentError(f"{root}: not a folder of images")
    paths = find_images(root)
    results = decode_all(paths, channels or 3)
    good_paths, images, skipped = [], [], 0
    for path, result in zip(paths, results, strict=False):
        if isinstance(result, ImageDecodeError):
            console.print(f"[yellow]warning:[/] skipping {result}", highlight=False, soft_wrap=True)
            skipped += 1
        else:
            good_paths.append(path)
            images.append(result)
    name = f"{label} " if label else ""
    if skipped:
        console.print(f"[yellow]warning:[/] skipped {skipped} unreadable file(s) in {name}{root}", highlight=False)
    if not good_paths:
        raise DataError(
            f"{root}: no usable image found (looked for png, jpg, jpeg, bmp, webp, tif, tiff in all sub-folders)"
        )
    if channels is None:
        channels = 1 if all(map(is_gray, images)) else 3
        if channels == 1:
            images = [np.ascontiguousarray(im[..., :1]) for im in images]
    keep = sum(image.nbytes for image in images) <= CACHE_LIMIT_BYTES
    return Domain(root=root, paths=good_paths, images=images if keep else None, channels=channels)


@dataclass(frozen=True)
class UnpairedFolders:
    """Where the two domains of an unpaired dataset live; `test_*` are optional held-out folders."""

    train_a: Path
    train_b: Path
    test_a: Path | None = None
    test_b: Path | None = None


def detect_layout(data: Path) -> str | None:
    """The data family a folder's layout shows: "unpaired" for trainA/ + trainB/, "paired" for train/ (A|B files)
    or A/ + B/ (matched by name); None when it shows neither (a folder of images, or of class folders)."""
    if (data / "trainA").is_dir():
        return "unpaired"
    if (data / "train").is_dir() or ((data / "A").is_dir() and (data / "B").is_dir()):
        return "paired"
    return None


def unpaired_folders(data: Path | None, domain_a: Path | None = None, domain_b: Path | None = None) -> UnpairedFolders:
    """Resolve the public layout `DATA/trainA` + `DATA/trainB` (+ testA/testB), or two explicit folders."""
    if domain_a is not None or domain_b is not None:
        if domain_a is None or domain_b is None:
            raise DataArgumentError("give both --domain-a and --domain-b")
        return UnpairedFolders(domain_a, domain_b)
    if data is None:
        raise DataArgumentError("give a data folder (with trainA/ and trainB/) or --domain-a and --domain-b")
    if not data.is_dir():
        raise DataArgumentError(f"{data}: no such folder")
    train_a, train_b = data / "trainA", data / "trainB"
    if not (train_a.is_dir() and train_b.is_dir()):
        raise DataError(
            f"{data}: expected sub-folders trainA/ and trainB/ (one per domain); "
            "or pass two folders with --domain-a and --domain-b"
        )
    test_a, test_b = data / "testA", data / "testB"
    return UnpairedFolders(train_a, train_b, test_a if test_a.is_dir() else None, test_b if test_b.is_dir() else None)


def load_resize(image: np.ndarray, load_size: int) -> np.ndarray:
    """The paper's first jitter step, deterministic: resize to load_size × load_size (bicubic)."""
    resized = cv2.resize(image, (load_size, load_size), interpolation=cv2.INTER_CUBIC)
    return resized[..., None] if resized.ndim == 2 else resized  # cv2 drops a single channel axis


def training_transform(image_size: int, flip: bool) -> A.Compose:
    """The paper's random jitter after the resize: random crop to image_size, random horizontal flip."""
    steps: list[A.BasicTransform] = [A.RandomCrop(image_size, image_size)]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)


def to_chw(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> uint8 (C, H, W) tensor owning its memory (what a worker ships)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def to_model_range(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 image tensors of a batch -> float32 in [-1, 1] (x / 127.5 - 1, as imageio.to_float); the rest as is.

    Runs where the batch is, so on a GPU the conversion costs one elementwise kernel per tensor.
    """
    return {k: v.float().div_(127.5).sub_(1.0) if v.dtype == torch.uint8 else v for k, v in batch.items()}


class ImageSource(Protocol):
    """Indexed training images (a Domain, or aligned pairs), decoded in memory when `images` is not None."""

    images: Sequence[Any] | None

    def __len__(self) -> int: ...
    def image(self, index: int) -> Any: ...


class PreparedDomain:
    """A domain's images after a deterministic step (a resize, a square crop): done once when the domain is cached
    in memory, else on every use."""

    def __init__(self, domain: ImageSource, prepare: Callable[[Any], np.ndarray]) -> None:
        self.domain, self.prepare = domain, prepare
        self.images = [prepare(im) for im in domain.images] if domain.images is not None else None

    def __len__(self) -> int:
        return len(self.domain)

    def image(self, index: int) -> np.ndarray:
        if self.images is not None:
            return self.images[index]
        return self.prepare(self.domain.image(index))


def sample_seed(seed: int, stream: int, counter: int) -> int:
    """A 32-bit seed that depends on (seed, stream, counter) alone, so any worker reproduces it."""
    return int(np.random.SeedSequence([seed, stream, counter]).generate_state(1)[0])


@lru_cache(maxsize=8)
def _permutation(seed: int, stream: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, stream, epoch]).permutation(n)


def pick(seed: int, stream: int, counter: int, n: int) -> int:
    """Index into a domain of `n` images: every image once per pass, in a fresh order each pass."""
    epoch, offset = divmod(counter, n)
    return int(_permutation(seed, stream, epoch, n)[offset])


class UnpairedDataset(Dataset):
    """Sample `counter` -> {"A": (C, H, W), "B": (C, H, W)} uint8 crops, A and B drawn independently."""

    def __init__(self, a: Domain, b: Domain, *, image_size: int, load_size: int, flip: bool, seed: int) -> None:
        resize = functools.partial(load_resize, load_size=load_size)
        self.a, self.b, self.seed = PreparedDomain(a, resize), PreparedDomain(b, resize), seed
        self.transform = training_transform(image_size, flip)

    def __len__(self) -> int:  # one pass over the larger domain; the sampler keeps counting beyond it
        return max(len(self.a), len(self.b))

    def _jitter(self, image: np.ndarray, stream: int, counter: int) -> torch.Tensor:
        self.transform.set_random_seed(sample_seed(self.seed, stream, counter))
        return to_chw(self.transform(image=image)["image"])

    def __getitem__(self, counter: int) -> dict[str, torch.Tensor]:
        image_a = self.a.image(pick(self.seed, 0, counter, len(self.a)))
        image_b = self.b.image(pick(self.seed, 1, counter, len(self.b)))
        return {"A": self._jitter(image_a, 2, counter), "B": self._jitter(image_b, 3, counter)}


class CounterSampler(Sampler[int]):
    """Yields start, start + stride, start + 2·stride, ... forever (stride > 1 splits the stream across ranks)."""

    def __init__(self, start: int = 0, stride: int = 1) -> None:
        self.start, self.stride = start, stride

    def __iter__(self) -> Iterator[int]:
        counter = self.start
        while True:
            yield counter
            counter += self.stride


def preview_images(domain: Domain, count: int, image_size: int) -> torch.Tensor:
    """The first `count` images resized to image_size², (N, C, S, S): fixed inputs for preview grids."""
    images = [resize(domain.image(i), (image_size, image_size)) for i in range(min(count, len(domain)))]
    return torch.from_numpy(to_float(np.stack(images)))


def default_num_workers(processes: int = 1) -> int:
    """DataLoader workers for each of `processes` training processes on this machine.

    One worker per spare core of the process's share (its main thread runs the model), at most 4: decoded
    images are cached, so jitter is cheap and more workers only cost memory.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(4, cores // max(1, processes) - 1))


def merge_domains(domains: list[Domain], root: Path) -> Domain:
    """One domain holding the images of several (e.g. one per class), in order, with common channels."""
    channels = max(d.channels for d in domains)
    domains = [d.with_channels(channels) for d in domains]
    cached = all(d.images is not None for d in domains)
    images = [im for d in domains for im in d.images] if cached else None  # type: ignore[union-attr]
    return Domain(root=root, paths=[p for d in domains for p in d.paths], images=images, channels=channels)


def scan_classes(
    root: Path, channels: int | None, *, console: Console | None = None
) -> tuple[Domain, np.ndarray, list[str]]:
    """A class-per-sub-folder dataset: (all images, their labels (N,) int64, class names in label order)."""
    if not root.is_dir():
        raise DataArgumentError(f"{root}: no such folder")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    folders = [p for p in folders if find_images(p)]
    if len(folders) < 2:
        raise DataError(
            f"{root}: a class-conditional model needs one sub-folder of images per class (at least two), "
            f"found {len(folders)}"
        )
    domains = [scan_domain(folder, channels, console=console, label=f"class {folder.name}") for folder in folders]
    labels = np.concatenate([np.full(len(d), i, dtype=np.int64) for i, d in enumerate(domains)])
    return merge_domains(domains, root), labels, [f.name for f in folders]


def square_crop(image: np.ndarray, image_size: int) -> np.ndarray:
    """Scale the shorter side to image_size (area filter when shrinking), centre-crop a square (deterministic)."""
    shorter = A.SmallestMaxSize(image_size, interpolation=cv2.INTER_AREA)
    return A.Compose([shorter, A.CenterCrop(image_size, image_size)])(image=image)["image"]


class ImageDataset(Dataset):
    """Sample `counter` → {"image": (C, S, S) uint8, "label": int64 (0 when unlabeled)}; optional random flip."""

    def __init__(self, images: Domain, labels: np.ndarray | None, *, image_size: int, flip: bool, seed: int) -> None:
        self.images = PreparedDomain(images, functools.partial(square_crop, image_size=image_size))
        self.labels, self.seed, self.flip = labels, seed, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, counter: int) -> dict[str, torch.Tensor]:
        index = pick(self.seed, 0, counter, len(self.images))
        image = self.images.image(index)
        if self.flip and np.random.default_rng(sample_seed(self.seed, 1, counter)).random() < 0.5:
            image = image[:, ::-1]
        label = int(self.labels[index]) if self.labels is not None else 0
        return {"image": to_chw(image), "label": torch.tensor(label, dtype=torch.int64)}
