"""Sampling and latent-space walks for generators, independent of the backend that runs them (no torch).

A `Sampler` maps feeds named after the generator's declared inputs (`model.inputs`: the latent z (N, dim)
float32, and class labels (N,) int64 for conditional models) to images (N, C, H, W) in [-1, 1]. Feeds are built
from that declaration, so a generator with another input needs no change here. Latents are standard normal; walks
use spherical interpolation by default, which keeps Gaussian latents at their typical norm (White 2016, "Sampling
Generative Networks").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import numpy as np

from translate.description import GeneratorInput, ModelDescription
from translate.errors import SamplingError
from translate.files import atomic_writer
from translate.imageio import make_grid, save_image, to_uint8


class Sampler(Protocol):
    model: ModelDescription  # what it is: its named inputs, channels, image size
    description: str  # e.g. "dcgan, step 3000, PyTorch on cpu"

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...

    def embed(self, labels: np.ndarray) -> np.ndarray: ...  # class embeddings (conditional models)

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray: ...


def draw(item: GeneratorInput, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random values of one generator input: N(0, I) vectors, or class indices uniform over its classes."""
    if item.kind == "class":
        return rng.integers(0, len(item.classes), n).astype(np.int64)
    return rng.standard_normal((n, *item.shape), dtype=np.float32)


def random_feeds(model: ModelDescription, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random draw of every input (export parity checks and int8 calibration use these)."""
    return {item.name: draw(item, n, rng) for item in model.inputs}


def feeds_for(model: ModelDescription, z: np.ndarray, labels: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """The generator's feeds: `z` for its latent, `labels` for its class input, any other input drawn from seed."""
    feeds = random_feeds(model, len(z), np.random.default_rng(seed + 1))
    feeds[model.latent.name] = z
    if model.class_input is not None:
        if labels is None:
            raise SamplingError("a class-conditional generator needs labels")
        feeds[model.class_input.name] = labels
    return feeds


def latents(n: int, dim: int, seed: int, truncation: float | None = None) -> np.ndarray:
    """(n, dim) standard-normal latents; with `truncation` T, entries beyond ±T are redrawn until inside."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim), dtype=np.float32)
    if truncation is not None:
        if truncation <= 0:
            raise SamplingError(f"--truncation must be positive, got {truncation}")
        outside = np.abs(z) > truncation
        while outside.any():
            z[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32)
            outside = np.abs(z) > truncation
    return z


def parse_label(label: str, class_names: list[str]) -> int:
    """A class given by name or by index."""
    if label in class_names:
        return class_names.index(label)
    if label.lstrip("-").isdigit() and 0 <= int(label) < len(class_names):
        return int(label)
    raise SamplingError(f"unknown class {label!r}; this model's classes are: {', '.join(class_names)}")


def spread_labels(n: int, num_classes: int) -> np.ndarray:
    """An even spread over the classes, in order (row-major grids then show one class per block)."""
    return (np.arange(n) * num_classes // n).astype(np.int64)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between rows of `a` and `b`, (D,) each, at fractions t (T,) → (T, D)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (anti-)parallel: fall back to a straight line
        return lerp(a, b, t)
    t = t[:, None]
    out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None].astype(np.float32)
    return ((1 - t) * a + t * b).astype(np.float32)


def walk(points: np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """A closed tour through `points` (P, D): `steps` frames per leg, back to the start → (P·steps, D)."""
    if method not in ("slerp", "lerp"):
        raise SamplingError(f"--method must be slerp or lerp, got {method!r}")
    if steps < 1 or len(points) < 2:
        raise SamplingError("a walk needs at least 2 points and 1 step per leg")
    fn = slerp if method == "slerp" else lerp
    t = np.arange(steps, dtype=np.float64) / steps  # the next leg starts at t = 1 of this one
    legs = [fn(points[i], points[(i + 1) % len(points)], t) for i in range(len(points))]
    return np.concatenate(legs).astype(np.float32)


def arithmetic(expression: str) -> np.ndarray:
    """`a.npy-b.npy+c.npy`: each file's latents averaged first (DCGAN paper, section 6.3) → (1, D)."""
    # Operators are only recognised right after ".npy", so file names may contain "-" and "+".
    parts = re.split(r"(?<=\.npy)\s*([+-])\s*", expression.strip())
    first_sign = "-" if parts[0].startswith("-") else "+"
    terms = [(first_sign, parts[0].lstrip("+-")), *zip(parts[1::2], parts[2::2], strict=True)]
    if not all(name.endswith(".npy") for _, name in terms):
        raise SamplingError(f"--arithmetic: cannot read {expression!r}; write e.g. smile.npy-neutral.npy+man.npy")
    total = None
    for sign, name in terms:
        z = load_latents(Path(name)).mean(axis=0)
        total = (-z if sign == "-" else z) if total is None else total + (-z if sign == "-" else z)
    return total[None].astype(np.float32)


def load_latents(path: Path, dim: int | None = None) -> np.ndarray:
    """Latents saved with --save-latents: (N, D) float32 (a plain .npy; never unpickled)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SamplingError(f"{path}: not a readable .npy latent file ({exc})") from None
    z = np.atleast_2d(z).astype(np.float32)
    if z.ndim != 2 or (dim is not None and z.shape[1] != dim):
        raise SamplingError(f"{path}: latents of shape {z.shape}, this model needs (N, {dim})")
    return z


def save_latents(path: Path, z: np.ndarray) -> None:
    with atomic_writer(path) as handle:
        np.save(handle, z.astype(np.float32), allow_pickle=False)


def generate(sampler: Sampler, feeds: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
    """uint8 (N, H, W, C) images, generated in batches."""
    n = len(next(iter(feeds.values())))
    chunks = []
    for start in range(0, n, batch_size):
        chunks.append(to_uint8(sampler({name: value[start : start + batch_size] for name, value in feeds.items()})))
    return np.concatenate(chunks)


def write_images(images: np.ndarray, out: Path, *, as_grid: bool, ncols: int | None = None) -> list[Path]:
    """One grid image at `out`, or one PNG per image inside the folder `out`."""
    if as_grid:
        save_image(out, make_grid(images, ncols=ncols))
        return [out]
    paths = [out / f"{i:04d}.png" for i in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        save_image(path, image)
    return paths


def save_animation(frames: np.ndarray, out: Path, *, duration_ms: int = 80) -> None:
    """A looping GIF (atomically written) from uint8 (T, H, W, C) frames."""
    from PIL import Image

    mode = "L" if frames.shape[-1] == 1 else "RGB"
    images = [Image.fromarray(f[..., 0] if mode == "L" else f, mode) for f in frames]
    with atomic_writer(out) as handle:
        images[0].save(handle, format="GIF", save_all=True, append_images=images[1:], loop=0, duration=duration_ms)


def _labels_for(model: ModelDescription, n: int, label: str | None) -> np.ndarray | None:
    classes = list(model.class_names)
    if not classes:
        if label is not None:
            raise SamplingError("--label needs a class-conditional model (cgan); this one is unconditional")
        return None
    if label is None:
        return spread_labels(n, len(classes))
    return np.full(n, parse_label(label, classes), dtype=np.int64)


def run_sample(
    sampler: Sampler,
    *,
    n: int,
    out: Path,
    seed: int = 0,
    label: str | None = None,
    truncation: float | None = None,
    latents_file: Path | None = None,
    save_latents_file: Path | None = None,
) -> list[Path]:
    """`translate sample`: n images as one near-square grid (FILE.png) or one PNG each (DIR/)."""
    model = sampler.model
    dim = model.latent.shape[0]
    if latents_file is not None:
        z = load_latents(latents_file, dim)
        n = len(z)
    else:
        z = latents(n, dim, seed, truncation)
    images = generate(sampler, feeds_for(model, z, _labels_for(model, n, label), seed))
    if save_latents_file is not None:
        save_latents(save_latents_file, z)
    as_dir = str(out).endswith(("/", "\\")) or out.is_dir() or not out.suffix
    # A conditional grid gets one row per class when the spread allows it.
    classes = len(model.class_names)
    ncols = n // classes if classes and label is None and n % classes == 0 else None
    return write_images(images, out, as_grid=not as_dir, ncols=ncols)


def run_interpolate(
    sampler: Sampler,
    *,
    out: Path,
    points: int = 4,
    steps: int = 16,
    method: str = "slerp",
    seed: int = 0,
    latents_file: Path | None = None,
    labels: str | None = None,
    label: str | None = None,
    arithmetic_expression: str | None = None,
) -> Path:
    """`translate interpolate`: a closed latent walk (or class walk) as a looping GIF or a PNG strip."""
    if out.suffix.lower() not in (".gif", ".png"):
        raise SamplingError(f"--out {out}: use a .gif (animation) or .png (strip) file name")
    model = sampler.model
    dim = model.latent.shape[0]
    if arithmetic_expression is not None:
        z = arithmetic(arithmetic_expression)
        if z.shape[1] != dim:
            raise SamplingError(f"--arithmetic: latents have {z.shape[1]} dimensions, the model needs {dim}")
        # The result and its neighbourhood (the paper shows the result with small perturbations).
        noise = latents(7, dim, seed) * 0.25
        z = np.concatenate([z, z + noise]).astype(np.float32)
        images = generate(sampler, feeds_for(model, z, _labels_for(model, len(z), label), seed))
        save_image(out.with_suffix(".png"), make_grid(images, ncols=len(images)))
        return out.with_suffix(".png")

    if labels is not None:
        if not model.class_names:
            raise SamplingError("--labels needs a class-conditional model (cgan)")
        classes = np.array([parse_label(x.strip(), list(model.class_names)) for x in labels.split(",")], np.int64)
        if len(classes) < 2:
            raise SamplingError("--labels needs at least two classes, e.g. --labels 3,8")
        embeddings = walk(sampler.embed(classes), steps, "lerp")  # embeddings are not Gaussian: straight lines
        z = np.repeat(latents(1, dim, seed), len(embeddings), axis=0)
        feeds = feeds_for(model, z, np.zeros(len(z), np.int64), seed)
        del feeds[model.class_input.name]  # the embedding stands in for the label
        frames = to_uint8(sampler.from_embedding(feeds, embeddings))
    else:
        start = load_latents(latents_file, dim) if latents_file else latents(points, dim, seed)
        path = walk(start, steps, method)
        walk_label = label or ("0" if model.class_names else None)
        frames = generate(sampler, feeds_for(model, path, _labels_for(model, len(path), walk_label), seed))

    if out.suffix.lower() == ".png":
        save_image(out, make_grid(frames, ncols=steps))
    else:
        # Small generators (e.g. 32 px digits) are enlarged so the animation is visible; nearest keeps pixels crisp.
        scale = max(1, 128 // frames.shape[1])
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
        save_animation(frames, out)
    return out
