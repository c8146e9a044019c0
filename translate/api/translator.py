"""`Translator`: a trained image-to-image model, called on images from Python as `translate apply` runs it.

The same decoding, resizing, padding, tiling and conversion as `apply` (translate.deploy.inference), so a PIL image
translated here is pixel-identical to the file `apply` writes for it (before the output format's own encoding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, overload

import numpy as np

from translate.errors import ApplyError, ConfigError
from translate.imageio import MAX_PIXELS, image_array, load_image, resize, to_pil

if TYPE_CHECKING:
    from PIL import Image
    from rich.console import Console

    from translate.deploy.inference import Translator as Runner
    from translate.description import ModelDescription

ImageLike = TypeVar("ImageLike", "Image.Image", np.ndarray)


@dataclass
class FolderSummary:
    """What `Translator.translate_folder` (and `translate apply`) did with a folder or an image."""

    output: Path  # the folder (or file) written
    done: int = 0  # images translated and written
    skipped: int = 0  # outputs that already existed (overwrite=True redoes them)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, why), one per image that failed
    notes: list[str] = field(default_factory=list)  # what the walk passed over: non-image files, loops, links
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def failure_lines(self) -> list[str]:
        """One line per failed image, naming it once."""
        return [reason if str(path) in reason else f"{path}: {reason}" for path, reason in self.failed]

    def closing_line(self) -> str:
        return (
            f"done {self.done}, skipped {self.skipped} (already there; --overwrite to redo), "
            f"failed {len(self.failed)}, {self.images_per_second:.2f} images/s"
        )


class Translator:
    """A trained image-to-image model (CycleGAN, pix2pix, an official or shipped translator), ready to run.

    Get one with `translate.load(...)`. Call it on a PIL image, a path, a uint8 (H, W, C) array or an (N, H, W, C)
    batch; it returns the same kind (a path gives a PIL image).

    Examples:
        >>> import translate
        >>> from PIL import Image
        >>> t = translate.load("ming2kai")
        >>> kai = t(Image.open("samples/ming/u4e02.png"))  # a PIL image, as `translate apply` writes it
        >>> summary = t.translate_folder("photos/", "photos_kai/")
    """

    def __init__(self, runner: Runner, backend: str, *, reload: Callable[[str], Runner] | None = None) -> None:
        self._runners = {runner.direction: runner}
        self._default = runner.direction
        self._reload = reload  # builds the runner of another direction (two-way checkpoints), on first use
        self.backend = backend  # "pytorch", "onnxruntime" or "openvino"

    @property
    def description(self) -> ModelDescription:
        """What the model is: recipe, direction, channels, training size, stride, provenance."""
        return self._runners[self._default].model

    @property
    def direction(self) -> str:
        """The direction calls use by default ("a2b" unless loaded with another)."""
        return self._default

    @property
    def channels(self) -> int:
        """Image channels in and out: 3 (RGB) or 1 (grey)."""
        return self.description.channels

    def __str__(self) -> str:
        """What runs, e.g. "pix2pix a2b, step 4000, EMA, PyTorch on cpu"."""
        return self._runners[self._default].description

    def __repr__(self) -> str:
        return f"<translate.Translator {self}>"

    def runner(self, direction: str | None = None) -> Runner:
        """The backend object that runs `direction` (float32 NCHW in [-1, 1] in and out), loaded on first use."""
        direction = direction or self._default
        if direction not in self._runners:
            if self._reload is None:
                raise ConfigError(
                    f"direction {direction}: this {self.backend} model holds only {self._default}; export the other "
                    f"generator with `translate export MODEL --direction {direction}`"
                )
            self._runners[direction] = self._reload(direction)
        return self._runners[direction]

    @overload
    def __call__(
        self, image: ImageLike, *, direction: str | None = ..., size: int | None = ..., tile: int | None = ...
    ) -> ImageLike: ...

    @overload
    def __call__(
        self, image: str | Path, *, direction: str | None = ..., size: int | None = ..., tile: int | None = ...
    ) -> Image.Image: ...

    def __call__(
        self,
        image: Image.Image | np.ndarray | str | Path,
        *,
        direction: str | None = None,
        size: int | None = None,
        tile: int | None = None,
    ) -> Image.Image | np.ndarray:
        """Translate one image or a batch.

        Args:
            image: a PIL image; a path to an image file; a uint8 array (H, W, C) or (H, W), or a batch (N, H, W, C).
                Colour, grey and transparent images are converted as `apply` converts files (transparent pixels on
                white, grey by ITU-R 601 luma for one-channel models).
            direction: "a2b" or "b2a" for two-way models (default: the one loaded).
            size: work at this size: the shorter side scaled to `size` px (as `apply --size`).
            tile: translate images larger than this many px a side in overlapping tiles (None: tiles above
                4 Mpx; 0: never), as `apply --tile`.

        Returns:
            the translation, of the kind given (a path gives a PIL image); arrays have the model's channels.
        """
        runner = self.runner(direction)
        check_size(size, MAX_PIXELS)
        if isinstance(image, (str, Path)):
            return to_pil(self._one(runner, load_image(Path(image), runner.channels), size, tile))
        if isinstance(image, np.ndarray):
            if image.ndim == 4:
                return np.stack([self._one(runner, self._as_array(frame, runner), size, tile) for frame in image])
            out = self._one(runner, self._as_array(image, runner), size, tile)
            return out[:, :, 0] if image.ndim == 2 else out
        if hasattr(image, "mode") and hasattr(image, "size"):  # a PIL image
            return to_pil(self._one(runner, image_array(image, runner.channels), size, tile))
        raise ApplyError(f"cannot translate a {type(image).__name__}: give a PIL image, a path or a uint8 array")

    def translate_folder(
        self,
        source: str | Path,
        out: str | Path | None = None,
        *,
        direction: str | None = None,
        ext: str | None = None,
        overwrite: bool = False,
        batch_size: int = 4,
        size: int | None = None,
        max_pixels: int | None = MAX_PIXELS,
        tile: int | None = None,
        progress: bool = True,
        console: Console | None = None,
        on_start: Callable[[int, Path], None] | None = None,
    ) -> FolderSummary:
        """Translate an image or a whole folder tree into `out` (default: `SOURCE_<direction>` beside it), keeping
        relative paths and names, as `translate apply` does; outputs are written atomically, existing ones are
        skipped unless `overwrite`, unreadable images are counted in the summary rather than raised.

        `max_pixels`: images of more pixels are failed unread (None: no limit). `on_start(count, out)` is called
        once the images are found, before any is translated.
        """
        from rich.console import Console

        from translate.deploy.inference import default_output, plan, translate_files, walk_notes

        runner = self.runner(direction)
        check_size(size, max_pixels)
        source = Path(source)
        target = Path(out) if out is not None else default_output(source, runner.direction)
        planned = plan(source, target, ext=ext, overwrite=overwrite)
        if on_start is not None:
            on_start(len(planned.jobs), target)
        done = translate_files(
            planned.jobs,
            runner,
            batch_size=batch_size,
            size=size,
            max_pixels=max_pixels,
            tile=tile,
            console=console or Console(stderr=True),
            progress=progress,
        )
        return FolderSummary(
            output=target,
            done=done.done,
            skipped=planned.skipped,
            failed=done.failed,
            notes=walk_notes(planned.walk),
            seconds=done.seconds,
        )

    @staticmethod
    def _as_array(image: np.ndarray, runner: Runner) -> np.ndarray:
        """A uint8 array as the model takes it, (H, W, channels); other channel counts go through Pillow's
        conversions, as a file of that kind would."""
        shape_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
        if image.dtype != np.uint8 or not shape_ok:
            raise ApplyError(
                f"an array of {image.dtype} {image.shape}: give uint8 (H, W), (H, W, C) or (N, H, W, C), C 1, 3 or 4"
            )
        if image.ndim == 3 and image.shape[2] == runner.channels:
            return np.ascontiguousarray(image)
        from PIL import Image

        plain = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image  # (H, W): Pillow's L
        return image_array(Image.fromarray(plain), runner.channels)

    @staticmethod
    def _one(runner: Runner, image: np.ndarray, size: int | None, tile: int | None) -> np.ndarray:
        from translate.deploy.inference import processed_size, translate_images

        if size is not None:
            image = resize(image, processed_size(image.shape[1], image.shape[0], size))
        return translate_images(runner, [image], tile)[0]


def check_size(size: int | None, max_pixels: int | None) -> None:
    """`size` is a side in px that the pixel limit allows (as `apply --size` and `--max-pixels` are checked)."""
    if size is None:
        return
    if not 8 <= size <= 16384:
        raise ConfigError(f"size {size}: give a side between 8 and 16384 px")
    if max_pixels is not None and size * size > max_pixels:
        raise ConfigError(
            f"--size {size} makes every image at least {size}×{size} px, more than --max-pixels {max_pixels}; "
            "lower --size or raise --max-pixels (0: no limit)"
        )
