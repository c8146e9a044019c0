"""`Generator`: a trained image generator, sampled from Python as `translate sample` and `interpolate` sample it.

The latents, labels and codes are drawn by the same functions as the commands' (translate.deploy.sampling), so the
same arguments give the same pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from translate.deploy.sampling import WALK_RANGE, Drawn, code_walk, draw_samples, parse_codes, walk_frames
from translate.deploy.sampling import latents as draw_latents
from translate.errors import SamplingError
from translate.imageio import make_grid, to_pil

if TYPE_CHECKING:
    from PIL import Image

    from translate.deploy.sampling import Sampler
    from translate.description import GeneratorInput, ModelDescription

# Latent codes to fix: {"cat": 3, "c1": 0.5}, or the command line's ["cat=3", "c1=0.5"].
Codes = Mapping[str, int | float | str] | Sequence[str]


class Generator:
    """A trained image generator (DCGAN, WGAN-GP, cGAN, InfoGAN, BEGAN, ProGAN, LAPGAN), ready to sample.

    Get one with `translate.load(...)`.

    Examples:
        >>> import translate
        >>> g = translate.load("mnist-cgan")
        >>> sevens = g.sample(16, seed=3, label=7)  # 16 PIL images, as `translate sample --label 7 --seed 3`
        >>> g.grid(16, seed=3, label=7).save("sevens.png")
        >>> frames = g.interpolate(points=4, steps=16)  # a closed latent walk
    """

    def __init__(self, sampler: Sampler, backend: str) -> None:
        self.sampler = sampler  # the backend object: named float feeds in, float32 NCHW images in [-1, 1] out
        self.backend = backend  # "pytorch", "onnxruntime" or "openvino"

    @property
    def description(self) -> ModelDescription:
        """What the model is: recipe, channels, image size, named inputs, provenance."""
        return self.sampler.model

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of a class-conditional model (labels are these names or their indices); () otherwise."""
        return tuple(self.description.class_names)

    @property
    def codes(self) -> tuple[GeneratorInput, ...]:
        """InfoGAN's latent codes (name, kind "categorical" or "uniform", categories); () for other models."""
        return tuple(self.description.codes)

    @property
    def latent_dim(self) -> int:
        return self.description.latent.shape[0]

    def __str__(self) -> str:
        """What runs, e.g. "cgan, step 3000, EMA, PyTorch on cpu"."""
        return self.sampler.description

    def __repr__(self) -> str:
        return f"<translate.Generator {self}>"

    def latents(self, n: int, *, seed: int = 0, truncation: float | None = None) -> np.ndarray:
        """n standard-normal latents (N, latent_dim) float32, as `sample --seed` draws them; `truncation` redraws
        entries beyond ±T."""
        return draw_latents(n, self.latent_dim, seed, truncation)

    @overload
    def sample(
        self,
        n: int = ...,
        *,
        seed: int = ...,
        label: int | str | None = ...,
        codes: Codes | None = ...,
        truncation: float | None = ...,
        latents: np.ndarray | None = ...,
        as_array: Literal[False] = ...,
    ) -> list[Image.Image]: ...

    @overload
    def sample(
        self,
        n: int = ...,
        *,
        seed: int = ...,
        label: int | str | None = ...,
        codes: Codes | None = ...,
        truncation: float | None = ...,
        latents: np.ndarray | None = ...,
        as_array: Literal[True],
    ) -> np.ndarray: ...

    def sample(
        self,
        n: int = 16,
        *,
        seed: int = 0,
        label: int | str | None = None,
        codes: Codes | None = None,
        truncation: float | None = None,
        latents: np.ndarray | None = None,
        as_array: bool = False,
    ) -> list[Image.Image] | np.ndarray:
        """Draw images.

        Args:
            n: how many (ignored when `latents` are given: one image per row).
            seed: the seed of the latents and of everything else drawn.
            label: class-conditional models: a class name or index for every image (default: the classes in turn).
            codes: InfoGAN: fix latent codes, e.g. {"cat": 3, "c1": 0.5}; the others are drawn per image.
            truncation: redraw latent entries beyond ±truncation.
            latents: (N, latent_dim) latents to use instead of drawing them (e.g. from `latents()`).
            as_array: return uint8 (N, H, W, C) instead of a list of PIL images.
        """
        drawn = self._draw(n, seed, label, codes, truncation, latents)
        return drawn.images if as_array else [to_pil(image) for image in drawn.images]

    def grid(
        self,
        n: int = 64,
        *,
        seed: int = 0,
        label: int | str | None = None,
        codes: Codes | None = None,
        truncation: float | None = None,
        latents: np.ndarray | None = None,
    ) -> Image.Image:
        """The samples of `sample` with the same arguments as one grid image: the picture `translate sample` writes
        (one row per class or category when they divide n, else near-square)."""
        drawn = self._draw(n, seed, label, codes, truncation, latents)
        return to_pil(make_grid(drawn.images, ncols=drawn.ncols))

    def interpolate(
        self,
        *,
        points: int = 4,
        steps: int = 16,
        method: Literal["slerp", "lerp"] = "slerp",
        seed: int = 0,
        latents: np.ndarray | None = None,
        label: int | str | None = None,
        labels: list[int | str] | None = None,
        codes: Codes | None = None,
        as_array: bool = False,
    ) -> list[Image.Image] | np.ndarray:
        """The frames of a closed latent walk, as `translate interpolate` draws them (before it enlarges small
        images for the GIF): through `points` random latents (or the rows of `latents`) and back, `steps` frames a
        leg; `labels` (two or more classes) walks between class embeddings with the latent fixed instead. Codes
        and any other input are held at one draw for every frame."""
        frames = walk_frames(
            self.sampler,
            points=points,
            steps=steps,
            method=method,
            seed=seed,
            z=latents,
            labels=labels,
            label=None if label is None else str(label),
            codes=codes or (),
        )
        return frames if as_array else [to_pil(frame) for frame in frames]

    def walk_code(
        self,
        name: str,
        *,
        steps: int = 8,
        span: tuple[float, float] = WALK_RANGE,
        seed: int = 0,
        codes: Codes | None = None,
    ) -> Image.Image:
        """InfoGAN: the continuous code `name` swept from span[0] to span[1] along each row, one row per value of
        the first categorical code not fixed by `codes`, z fixed (`translate interpolate --walk NAME` as a .png)."""
        images, _ = code_walk(
            self.sampler, name, parse_codes(self.description, codes or ()), steps=steps, span=span, seed=seed
        )
        return to_pil(make_grid(images, ncols=steps))

    def save_samples(
        self,
        out: str | Path,
        n: int = 64,
        *,
        seed: int = 0,
        label: int | str | None = None,
        codes: Codes | None = None,
        truncation: float | None = None,
        latents_file: str | Path | None = None,
        save_latents: str | Path | None = None,
    ) -> list[Path]:
        """Write n samples as `translate sample` does: one grid at FILE.png, or one PNG each into DIR/ (a path
        ending in / or without a suffix); `latents_file` reuses latents saved with `save_latents` (.npy)."""
        from translate.deploy.sampling import run_sample

        return run_sample(
            self.sampler,
            n=n,
            out=Path(out),
            seed=seed,
            label=None if label is None else str(label),
            truncation=truncation,
            latents_file=None if latents_file is None else Path(latents_file),
            save_latents_file=None if save_latents is None else Path(save_latents),
            codes=codes or (),
        )

    def save_interpolation(
        self,
        out: str | Path,
        *,
        points: int = 4,
        steps: int = 16,
        method: Literal["slerp", "lerp"] = "slerp",
        seed: int = 0,
        latents_file: str | Path | None = None,
        labels: str | None = None,
        label: int | str | None = None,
        arithmetic: str | None = None,
        codes: Codes | None = None,
        walk_code: str | None = None,
        walk_range: str | None = None,
    ) -> Path:
        """Write a walk as `translate interpolate` does: a looping FILE.gif or a FILE.png strip; `labels` ("3,8")
        walks between classes, `arithmetic` ("a.npy-b.npy+c.npy") draws latent arithmetic, `walk_code` sweeps an
        InfoGAN code (over `walk_range`, "LOW,HIGH"). Returns the file written."""
        from translate.deploy.sampling import run_interpolate

        return run_interpolate(
            self.sampler,
            out=Path(out),
            points=points,
            steps=steps,
            method=method,
            seed=seed,
            latents_file=None if latents_file is None else Path(latents_file),
            labels=labels,
            label=None if label is None else str(label),
            arithmetic_expression=arithmetic,
            codes=codes or (),
            walk_code=walk_code,
            walk_range=walk_range,
        )

    def _draw(
        self,
        n: int,
        seed: int,
        label: int | str | None,
        codes: Codes | None,
        truncation: float | None,
        z: np.ndarray | None,
    ) -> Drawn:
        if z is None and n < 1:
            raise SamplingError(f"n={n}: draw at least one image")
        return draw_samples(
            self.sampler,
            n=n,
            seed=seed,
            label=None if label is None else str(label),
            truncation=truncation,
            z=z,
            codes=codes or (),
        )
