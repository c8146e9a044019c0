"""Image files and pixel conventions, in one place.

Conventions used across the project:

* On disk / at the edges: ``uint8`` arrays shaped ``(H, W, C)`` (or ``(N, H, W, C)``), RGB or single-channel.
* Inside models: ``float32`` arrays shaped ``(C, H, W)`` (or ``(N, C, H, W)``) with values in ``[-1, 1]``.

This module deliberately imports only numpy, Pillow and the standard library: the ONNX-only deploy path
imports it and must not pull in torch.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from translate.errors import ImageDecodeError, ImageTooLargeError
from translate.files import atomic_writer

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageWalk",
    "find_images",
    "image_size",
    "label_rows",
    "load_image",
    "make_grid",
    "over_pixel_limit",
    "pad_to_multiple",
    "resize",
    "save_image",
    "to_float",
    "to_uint8",
    "walk_images",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

# The most pixels an image may declare in its header, checked before anything is decoded: a 140 KB PNG can declare
# 144 Mpx. 64 Mpx holds every current camera sensor (the largest full-frame ones have 61 Mpx) and 8K frames
# (33 Mpx); decoded that is 192 MB of RGB uint8 and 768 MB as the float32 network input, which an ordinary machine
# still holds. It is also below Pillow's own 89 Mpx warning threshold, which this check replaces (see `_open`).
MAX_PIXELS = 64_000_000

# Pillow format name for each extension save_image can write.
_SAVE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

# Everything Pillow raises for a file it cannot decode. OSError covers truncated data ("image file is
# truncated"), SyntaxError/struct.error/EOFError come out of individual plugins' header parsers.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
)

# Integer modes holding more than 8 bits per sample; their values are treated as 16-bit (0..65535).
_WIDE_INT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Orientations 5-8 rotate by 90 degrees, i.e. swap width and height.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        # Pillow's own message embeds the file object's repr, which is noise next to our path prefix.
        return "not a recognised image format"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _within(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class ImageWalk:
    """What `walk_images` found under ``root``: each list holds paths as walked (under ``root``), sorted by them."""

    root: Path
    images: list[Path]
    other_files: list[Path] = field(default_factory=list)  # visible files without an image extension
    loops: list[Path] = field(default_factory=list)  # folder links back to a folder on their own path
    excluded: list[Path] = field(default_factory=list)  # folders that lead into ``exclude``


def walk_images(root: Path, *, exclude: Path | None = None) -> ImageWalk:
    """Find the image files under ``root``, and what the walk passed over.

    ``root`` may be a single image file (giving ``[root]``) or a directory, walked recursively in name order,
    following directory symlinks with each real directory visited once. Extensions match case-insensitively;
    files and directories whose names start with ``.`` are skipped unreported, which also hides ``save_image``'s
    temp files. Reported, not walked: links back to a folder on their own path (``loops``), and folders whose real
    path is ``exclude`` or inside it (``excluded``). Files with other extensions are listed in ``other_files``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` is a file without an image extension.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image path not found: {root}")
    if not root.is_dir():
        if root.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageWalk(root, [root])
        allowed = " ".join(sorted(IMAGE_EXTENSIONS))
        raise ValueError(f"{root}: not an image file (expected one of: {allowed})")

    excluded_real = os.path.realpath(exclude) if exclude is not None else None
    images: list[Path] = []
    other_files: list[Path] = []
    loops: list[Path] = []
    excluded: list[Path] = []
    seen_dirs: set[tuple[int, int]] = set()
    # Real paths of the folders on the walked path to each folder: a link to one of them is a loop.
    chains: dict[str, tuple[str, ...]] = {str(root): (os.path.realpath(root),)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        chain = chains.pop(dirpath)
        # Two links may lead to one real directory, remembered by (device, inode): walk it once.
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        walked = []
        for name in sorted(d for d in dirnames if not _is_hidden(d)):  # sorted: which alias is walked is stable
            full = os.path.join(dirpath, name)
            real = os.path.realpath(full)
            if excluded_real is not None and _within(real, excluded_real):
                excluded.append(Path(full))
            elif real in chain:
                loops.append(Path(full))
            else:
                chains[full] = (*chain, real)
                walked.append(name)
        dirnames[:] = walked
        for name in filenames:
            full = os.path.join(dirpath, name)
            if _is_hidden(name) or not os.path.isfile(full):  # e.g. a dangling symlink
                continue
            is_image = os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            (images if is_image else other_files).append(Path(full))

    def walk_order(paths: list[Path]) -> list[Path]:
        return sorted(paths, key=lambda path: path.relative_to(root).as_posix())

    return ImageWalk(root, *(walk_order(paths) for paths in (images, other_files, loops, excluded)))


def find_images(root: Path) -> list[Path]:
    """The image files under ``root`` (an image file or a folder), sorted by their path relative to ``root``.

    See `walk_images`, which also says what the walk passed over, for the rules and errors.
    """
    return walk_images(root).images


def over_pixel_limit(size: tuple[int, int], max_pixels: int | None) -> str | None:
    """Why an image of ``size`` (width, height) is over ``max_pixels``; None when within it or with no limit."""
    width, height = size
    if max_pixels is None or width * height <= max_pixels:
        return None
    limit = f"{max_pixels / 1e6:g} Mpx" if max_pixels >= 1_000_000 else f"{max_pixels} px"
    return f"{width}×{height} px is over the {limit} limit"


# Pillow has its own decompression-bomb check on the process-wide Image.MAX_IMAGE_PIXELS: past it Image.open prints
# a raw two-line warning, past twice it raises, whatever max_pixels allows. `_open` turns it off while it parses a
# header and applies max_pixels instead; the lock keeps decode threads from restoring it under each other.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pillow_limit_off() -> Iterator[int | None]:
    """Pillow's decompression-bomb check off for the block; yields the limit it had (None: it was off)."""
    with _PILLOW_LIMIT_LOCK:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield limit
        finally:
            Image.MAX_IMAGE_PIXELS = limit


@contextmanager
def _open(fh: BinaryIO, path: Path, max_pixels: int | None, *, decode: bool) -> Iterator[Image.Image]:
    """``Image.open`` under ``max_pixels`` rather than Pillow's limit; ``decode`` also decodes every pixel.

    Raises ImageTooLargeError, before any pixel is decoded, when the header declares more than ``max_pixels``.
    """
    with _pillow_limit_off() as pillow_limit:
        img = Image.open(fh)
    with img:
        reason = over_pixel_limit(img.size, max_pixels)
        if reason is not None:
            raise ImageTooLargeError(path, reason)
        if decode:
            # Some plugins (TIFF) check Pillow's limit again while decoding: an image past it that max_pixels
            # allows is decoded with the check off, one at a time, which also bounds the memory such images take.
            if pillow_limit is not None and img.width * img.height > pillow_limit:
                with _pillow_limit_off():
                    img.load()
            # Image.open only reads the header; load() forces the full decode so truncated files fail here rather
            # than later (and without touching the global ImageFile.LOAD_TRUNCATED_IMAGES).
            img.load()
        yield img


def _exif_orientation(img: Image.Image) -> int:
    # Broken EXIF in an otherwise decodable image is metadata damage, not a decode failure: ignore it.
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _flatten_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _has_transparency(img: Image.Image) -> bool:
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return True
    # A palette image can carry alpha in the palette itself (e.g. PNG written from an RGBA palette).
    return img.mode == "P" and img.palette is not None and img.palette.mode.endswith("A")


def _to_array(img: Image.Image, channels: int) -> np.ndarray:
    if img.mode in _WIDE_INT_MODES:
        # Scale the full 16-bit range onto 8 bits (65535 / 257 == 255) instead of clipping at 255,
        # which would turn almost every pixel white.
        wide = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
        grey = np.rint(wide / 257.0).astype(np.uint8)
        return np.repeat(grey[:, :, None], channels, axis=2)
    if _has_transparency(img):
        img = _flatten_on_white(img)
    if img.mode == "F":
        img = img.convert("L")  # Pillow clips float pixels to 0..255
    if channels == 1:
        if img.mode not in ("L", "RGB", "1"):
            img = img.convert("RGB")  # CMYK, YCbCr, P, LAB, ...: go through RGB for a defined luma
        img = img.convert("L")
        return np.array(img, dtype=np.uint8)[:, :, None]
    # np.array, not np.asarray: asarray over a PIL image yields a read-only view of its bytes, which breaks
    # in-place augmentation and makes torch.from_numpy warn.
    return np.array(img.convert("RGB"), dtype=np.uint8)


def image_array(img: Image.Image, channels: int = 3) -> np.ndarray:
    """An image already in memory as `load_image` decodes a file: EXIF orientation applied (on a copy: `img` is
    left as it is), transparent pixels composited onto white, uint8 (H, W, channels)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if _exif_orientation(img) != 1:
        img = ImageOps.exif_transpose(img)
    return np.ascontiguousarray(_to_array(img, channels))


def load_image(path: Path, channels: int = 3, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode an image file into a ``uint8`` array shaped ``(H, W, channels)``.

    ``channels=3`` gives RGB, ``channels=1`` luminance (ITU-R 601 luma, as Pillow's ``L``). EXIF orientation
    is applied. Transparent pixels are composited onto white; 16-bit images are scaled (``/ 257``) to 8 bits.
    An image whose header declares more than ``max_pixels`` pixels (None: no limit) is not decoded at all.

    Raises:
        ImageTooLargeError: the image has more than ``max_pixels`` pixels (an ImageDecodeError).
        ImageDecodeError: the file is not an image, is truncated or otherwise cannot be decoded.
        FileNotFoundError, PermissionError, IsADirectoryError: the file itself cannot be opened.
        ValueError: ``channels`` is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    # Opened outside the try: file-system errors are not decode errors and keep their own types.
    with open(path, "rb") as fh:
        try:
            with _open(fh, path, max_pixels, decode=True) as img:
                if _exif_orientation(img) != 1:
                    ImageOps.exif_transpose(img, in_place=True)
                array = _to_array(img, channels)
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(path, _reason(exc)) from exc
    return np.ascontiguousarray(array)


def image_size(path: Path, *, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """Return ``(width, height)`` as ``load_image`` would produce it, i.e. after EXIF orientation.

    Only the header is read, except for PNG files that may hold EXIF/XMP after the pixel data, which Pillow
    can only reach by decoding the whole image (never one over ``max_pixels``). A truncated body is therefore not
    detected here.

    Raises:
        ImageTooLargeError: the header declares more than ``max_pixels`` pixels (None: no limit).
        ImageDecodeError: the header cannot be parsed.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            with _open(fh, path, max_pixels, decode=False) as img:
                width, height = img.size
                if img.format == "PNG" and "exif" not in img.info:
                    # Pillow's PNG getexif() decodes every pixel to look for a late eXIf chunk. A byte scan is
                    # far cheaper, and a false hit inside compressed data merely costs that decode.
                    fh.seek(0)
                    data = fh.read()
                    if b"eXIf" not in data and b"XML:com.adobe.xmp" not in data:
                        return width, height
                if _exif_orientation(img) in _TRANSPOSING_ORIENTATIONS:
                    width, height = height, width
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(path, _reason(exc)) from exc
    return width, height


def to_float(images: np.ndarray) -> np.ndarray:
    """Convert ``uint8`` ``(H, W, C)`` / ``(N, H, W, C)`` to ``float32`` ``(C, H, W)`` / ``(N, C, H, W)``.

    Values map as ``x / 127.5 - 1``, i.e. 0 -> -1.0 and 255 -> 1.0.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 pixels, got {images.dtype}")
    if images.ndim == 3:
        axes: tuple[int, ...] = (2, 0, 1)
    elif images.ndim == 4:
        axes = (0, 3, 1, 2)
    else:
        raise ValueError(f"to_float expects (H, W, C) or (N, H, W, C), got shape {images.shape}")
    scaled = images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(scaled.transpose(axes))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Inverse of ``to_float``: float (C, H, W) / (N, C, H, W) -> ``uint8`` (H, W, C) / (N, H, W, C).

    Values are clipped to [-1, 1] and rounded with ``np.rint``, so uint8 -> float -> uint8 is exact. NaN maps
    to mid-grey so one diverged pixel cannot produce undefined casts.
    """
    images = np.asarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"to_uint8 expects floating-point pixels, got {images.dtype}")
    if images.ndim == 3:
        axes: tuple[int, ...] = (1, 2, 0)
    elif images.ndim == 4:
        axes = (0, 2, 3, 1)
    else:
        raise ValueError(f"to_uint8 expects (C, H, W) or (N, C, H, W), got shape {images.shape}")
    clean = np.nan_to_num(images.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    pixels = np.rint((np.clip(clean, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(axes))


def to_pil(image: np.ndarray) -> Image.Image:
    """A uint8 (H, W, 1) or (H, W, 3) image as a PIL image of mode L or RGB."""
    # fromarray picks 'L' for 2-D uint8 and 'RGB' for (H, W, 3) uint8.
    if image.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(image[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(image))


def _check_hwc(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"{what} expects a uint8 (H, W, C) array, got {image.dtype} {image.shape}")
    return image


def save_image(path: Path, image: np.ndarray, *, quality: int = 95) -> None:
    """Write a ``uint8`` ``(H, W, C)`` image (C in {1, 3}) atomically; the format follows the extension.

    Written through `translate.files.atomic_writer`: readers never see a partial file, and on failure any
    previous ``path`` is left untouched. ``quality`` applies to JPEG and WebP.
    """
    path = Path(path)
    image = _check_hwc(image, "save_image")
    if image.shape[2] not in (1, 3):
        raise ValueError(f"save_image expects 1 or 3 channels, got {image.shape[2]}")
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image extension {path.suffix!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    options: dict[str, int] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}

    with atomic_writer(path) as handle:
        to_pil(image).save(handle, format=fmt, **options)


def make_grid(images: np.ndarray, ncols: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile ``uint8`` ``(N, H, W, C)`` images into one ``(H', W', C)`` image.

    ``ncols`` defaults to ``ceil(sqrt(N))`` and is capped at N. ``padding`` pixels of ``pad_value`` separate
    the tiles and surround the grid; unused cells in the last row are filled with ``pad_value`` too.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"make_grid expects a non-empty uint8 (N, H, W, C) array, got {images.dtype} {images.shape}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
    n, h, w, c = images.shape
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * h + (nrows + 1) * padding, ncols * w + (ncols + 1) * padding, c), pad_value, dtype=np.uint8)
    for i, tile in enumerate(images):
        row, col = divmod(i, ncols)
        top = padding + row * (h + padding)
        left = padding + col * (w + padding)
        grid[top : top + h, left : left + w] = tile
    return grid


def label_rows(grid: np.ndarray, labels: list[str], row_height: int, padding: int = 2) -> np.ndarray:
    """`grid` (from `make_grid`, rows of `row_height` px with `padding`) with a white margin on the left that names
    each row, in black text centred on its row."""
    size = max(10, min(24, row_height // 3))  # legible at 32 px rows without dwarfing 256 px ones
    font = ImageFont.load_default(size=size)
    boxes = [font.getbbox(label) for label in labels]  # (left, top, right, bottom) of each label's ink
    width = max(int(box[2]) for box in boxes) + 2 * padding + 4
    margin = Image.new("L", (width, grid.shape[0]), 255)
    draw = ImageDraw.Draw(margin)
    for row, (label, (_, top, right, bottom)) in enumerate(zip(labels, boxes, strict=True)):
        middle = padding + row * (row_height + padding) + row_height / 2
        draw.text((width - padding - 2 - right, middle - (top + bottom) / 2), label, fill=0, font=font)
    text = np.asarray(margin)[..., None].repeat(grid.shape[2], axis=2)
    return np.concatenate([text, grid], axis=1)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a ``uint8`` ``(H, W, C)`` image to ``size = (width, height)``; returns ``(height, width, C)``.

    Bicubic, or Lanczos when shrinking by more than 2x on either axis (bicubic aliases badly there).
    Channel counts other than 1 and 3 are resized channel by channel.
    """
    image = _check_hwc(image, "resize")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive (width, height), got {size}")
    h, w, c = image.shape
    if (w, h) == (width, height):
        return image.copy()
    shrinking_hard = w > 2 * width or h > 2 * height
    method = Image.Resampling.LANCZOS if shrinking_hard else Image.Resampling.BICUBIC
    if c in (1, 3):
        out = np.array(to_pil(image).resize((width, height), method), dtype=np.uint8)  # writable copy
        return out[:, :, None] if c == 1 else out
    planes = [
        np.array(Image.fromarray(np.ascontiguousarray(image[:, :, k])).resize((width, height), method))
        for k in range(c)
    ]
    return np.stack(planes, axis=2)


def pad_to_multiple(images: np.ndarray, multiple: int, minimum: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad ``(N, C, H, W)`` images on the bottom/right so H and W become multiples of ``multiple``
    (and at least ``minimum``).

    Uses reflection padding (no hard edge for the network to react to); an axis shorter than its pad falls
    back to symmetric padding, so even 1x1 images work. Returns ``(padded, (H, W))``; crop the result back
    with ``out[..., :H, :W]``. When no padding is needed the input array itself is returned.
    """
    images = np.asarray(images)
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if images.ndim < 2:
        raise ValueError(f"pad_to_multiple expects (..., H, W), got shape {images.shape}")
    h, w = images.shape[-2:]
    pad_h, pad_w = (max(size, minimum) + (-max(size, minimum) % multiple) - size for size in (h, w))
    padded = images
    # Pad each axis separately so only the too-short axis loses exact reflection.
    for axis, size, pad in ((-2, h, pad_h), (-1, w, pad_w)):
        if pad == 0:
            continue
        widths = [(0, 0)] * images.ndim
        widths[axis] = (0, pad)
        # np.pad's 'reflect' excludes the edge pixel, so it needs pad < size.
        padded = np.pad(padded, widths, mode="reflect" if pad < size else "symmetric")
    return padded, (h, w)
