"""Batched directory-to-directory translation, independent of the backend that runs the network.

The backend is any `Translator`: a callable from float32 (N, C, H, W) in [-1, 1] to the same shape. This module
imports no torch, so the ONNX Runtime path stays light. Images are grouped by size (read from headers) so each
batch is one tensor; decoding runs ahead on threads and encoding runs behind on threads, overlapping the model.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from translate.backends import tiles
from translate.backends.base import Translator
from translate.errors import ApplyError, ImageDecodeError, ImageTooLargeError
from translate.files import remove_stale_temps
from translate.imageio import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageWalk,
    image_size,
    load_image,
    over_pixel_limit,
    pad_to_multiple,
    resize,
    save_image,
    to_float,
    to_uint8,
    walk_images,
)

MIN_SIDE = 16  # smaller images are padded up to this before the network, then cropped back
# At most this many pixels go through the network at once, so a batch of large photos cannot exhaust memory.
PIXELS_PER_BATCH = 4 * 512 * 512


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0  # outputs that already existed
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    skipped: int  # outputs that already exist (redone with overwrite)
    walk: ImageWalk  # what INPUT holds besides its images, for the summary (`walk_notes`)


def default_output(input_path: Path, suffix: str) -> Path:
    """A new sibling of the input: photos/ -> photos_a2b/, cat.jpg -> cat_a2b.jpg."""
    input_path = input_path.resolve()
    if input_path.is_file():
        return input_path.with_name(f"{input_path.stem}_{suffix}{input_path.suffix}")
    return input_path.with_name(f"{input_path.name}_{suffix}")


def plan(input_path: Path, out: Path, *, ext: str | None, overwrite: bool) -> Plan:
    """Pair every input image with its output path, leaving out those whose output exists (unless overwrite)."""
    if not input_path.exists():
        raise ApplyError(f"{input_path}: no such file or folder")
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_EXTENSIONS:
            raise ApplyError(f"--ext {ext}: not an image format; use one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    root = input_path.resolve()
    out = out.resolve()
    if root.is_dir() and (out == root or root in out.parents):
        raise ApplyError(f"--out {out} is inside the input folder {root}: choose a folder outside it")
    # Never walk into the output folder: a link to it inside INPUT would make each rerun translate the earlier
    # outputs again (out/link/link/...). An INPUT inside the output folder is walked whole all the same.
    exclude = None if out in root.parents else out
    try:
        walk = walk_images(input_path, exclude=exclude)
    except ValueError as exc:  # a file that is not an image
        raise ApplyError(str(exc)) from None
    sources = walk.images
    if not sources:
        raise ApplyError(f"{input_path}: no images found (png, jpg, jpeg, bmp, webp, tif, tiff, in all sub-folders)")
    jobs, skipped = [], 0
    claimed: dict[Path, Path] = {}
    # A single image with an image-named --out is written to exactly that file.
    single_file = root.is_file() and out.suffix.lower() in IMAGE_EXTENSIONS
    for source in sources:
        relative = source.relative_to(input_path) if root.is_dir() else Path(source.name)
        target = out if single_file else out / relative
        if ext is not None:
            target = target.with_suffix(ext)
        if target.resolve() == source.resolve():
            raise ApplyError(f"{target}: output would overwrite its input; choose another --out")
        if target in claimed:
            raise ApplyError(
                f"{source} and {claimed[target]} would both be written to {target}; drop --ext or rename one"
            )
        claimed[target] = source
        if target.exists() and not overwrite:
            skipped += 1
            continue
        jobs.append(Job(source, target))
    # Temps that a killed earlier run left beside these outputs; only theirs, as a folder may hold other files.
    names: dict[Path, set[str]] = defaultdict(set)
    for target in claimed:
        names[target.parent].add(target.name)
    for folder, targets in names.items():
        remove_stale_temps(folder, targets=targets)
    return Plan(jobs, skipped, walk)


def walk_notes(walk: ImageWalk) -> list[str]:
    """One summary line per kind of entry the walk passed over (none when it passed over nothing)."""

    def plural(count: int, noun: str) -> str:
        return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

    def relative(paths: list[Path]) -> str:
        return ", ".join(path.relative_to(walk.root).as_posix() for path in paths)

    notes = []
    if walk.other_files:
        counts = Counter(path.suffix.lower() or "no extension" for path in walk.other_files)
        kinds = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        listed = ", ".join(kind if count == 1 else f"{kind} ×{count}" for kind, count in kinds)
        notes.append(f"skipped {plural(len(walk.other_files), 'non-image file')} ({listed})")
    if walk.loops:
        notes.append(f"skipped {plural(len(walk.loops), 'symlink loop')}: {relative(walk.loops)}")
    if walk.excluded:
        notes.append(f"skipped {plural(len(walk.excluded), 'link')} into the output folder: {relative(walk.excluded)}")
    return notes


def _batches(
    jobs: list[Job], size: int | None, batch_size: int, max_pixels: int | None, failed: list
) -> Iterator[list[Job]]:
    """Group jobs by (processed) image size so each batch stacks into one array; over-limit images fail here."""
    groups: dict[tuple[int, int], list[Job]] = defaultdict(list)
    for job in jobs:
        try:
            w, h = image_size(job.source, max_pixels=max_pixels)
        except ImageTooLargeError as exc:
            failed.append((job.source, f"{exc} (--max-pixels)"))
            continue
        except (ImageDecodeError, OSError) as exc:
            failed.append((job.source, str(exc)))
            continue
        processed = processed_size(w, h, size)
        # --size may enlarge an image (or a thin one a lot): the limit holds for what the network gets, too.
        reason = over_pixel_limit(processed, max_pixels)
        if reason is not None:
            failed.append((job.source, f"{job.source}: at --size {size}, {reason} (--max-pixels)"))
            continue
        groups[processed].append(job)
    for (w, h), members in groups.items():
        per_batch = max(1, min(batch_size, PIXELS_PER_BATCH // (w * h)))
        for start in range(0, len(members), per_batch):
            yield members[start : start + per_batch]


def processed_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """`size` scales the shorter side to `size` px, keeping the aspect ratio; None keeps the image as is."""
    if size is None:
        return width, height
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(
    batch: list[Job], channels: int, size: int | None, max_pixels: int | None
) -> list[tuple[Job, np.ndarray | str]]:
    out: list[tuple[Job, np.ndarray | str]] = []
    for job in batch:
        try:
            image = load_image(job.source, channels, max_pixels=max_pixels)
            if size is not None:
                image = resize(image, processed_size(image.shape[1], image.shape[0], size))
        except (ImageDecodeError, OSError) as exc:
            out.append((job, str(exc)))
            continue
        except MemoryError:  # one image this machine cannot hold must not end the run, nor go unnamed
            out.append((job, f"{job.source}: not enough memory to decode it; lower --max-pixels to skip such images"))
            continue
        out.append((job, image))
    return out


def run_model(translator: Translator, images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, H, W, C): normalise, pad to the stride, translate, crop, convert back."""
    # Tiny images are padded up too: a ResNet's reflection padding needs a few pixels after downsampling.
    minimum = max(MIN_SIDE, translator.stride)
    batch, (h, w) = pad_to_multiple(to_float(images), translator.stride, minimum)
    return to_uint8(translator(batch)[..., :h, :w])


def translate_images(translator: Translator, images: list[np.ndarray], tile: int | None) -> list[np.ndarray]:
    """Same-size uint8 (H, W, C) images → their translations: as one batch, or one by one in tiles when they are
    large (`tiles.wants_tiles`), never stacking them, so memory holds one input and one output beside the tiles."""
    h, w = images[0].shape[:2]
    if not tiles.wants_tiles(h, w, tile):
        return list(run_model(translator, np.stack(images)))
    minimum = max(MIN_SIDE, translator.stride)
    side = tile or tiles.DEFAULT_TILE
    backend = translator.tiling()
    return [
        tiles.translate_tiled(backend, image, stride=translator.stride, tile=side, minimum=minimum) for image in images
    ]


def translate_files(
    jobs: list[Job],
    translator: Translator,
    *,
    batch_size: int = 4,
    size: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
    tile: int | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> Summary:
    """Translate every job; decode ahead and encode behind on threads. Failures are recorded, not raised.

    An image of more than ``max_pixels`` pixels (None: no limit), as decoded or after ``size``, fails unread.
    ``tile``: images larger than this many px a side are translated in overlapping tiles (backends/tiles.py); None
    tiles those above ``tiles.AUTO_PIXELS``, 0 never tiles.
    """
    console = console or Console(stderr=True)
    summary = Summary()
    start = time.perf_counter()
    workers = max(2, min(8, os.cpu_count() or 2))
    batches = list(_batches(jobs, size, batch_size, max_pixels, summary.failed))
    writes: list[tuple[Job, Future]] = []
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(workers, thread_name_prefix="encode") as writers,
        _progress(console, progress) as bar,
    ):
        task = bar.add_task("translating", total=sum(len(b) for b in batches))
        # Keep two batches decoding while the model works on the current one.
        pending = [readers.submit(_decode, b, translator.channels, size, max_pixels) for b in batches[:2]]
        for index in range(len(batches)):
            decoded = pending.pop(0).result()
            if index + 2 < len(batches):
                pending.append(readers.submit(_decode, batches[index + 2], translator.channels, size, max_pixels))
            good = [(job, image) for job, image in decoded if isinstance(image, np.ndarray)]
            summary.failed += [(job.source, error) for job, error in decoded if isinstance(error, str)]
            if good:
                try:
                    outputs = translate_images(translator, [image for _, image in good], tile)
                except (RuntimeError, ValueError, MemoryError) as exc:  # one bad batch must not end the whole run
                    summary.failed += [(job.source, f"{job.source}: the model failed: {exc}") for job, _ in good]
                    outputs = []
                for (job, _), output in zip(good, outputs, strict=False):
                    writes.append((job, writers.submit(save_image, job.target, output)))
            bar.advance(task, len(decoded))
        for job, future in writes:
            try:
                future.result()
                summary.done += 1
            except (OSError, ValueError) as exc:
                summary.failed.append((job.source, f"cannot write {job.target}: {exc}"))
    summary.seconds = time.perf_counter() - start
    return summary


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and (console.is_terminal or console.is_jupyter)),
    )
