"""Sampling and latent-space walks for generators, independent of the backend that runs them (no torch).

A `Sampler` maps feeds named after the generator's declared inputs (`model.inputs`: the latent z (N, dim)
float32, class labels (N,) int64 for conditional models, InfoGAN's codes (N,) each) to images (N, C, H, W) in
[-1, 1]. Feeds are built from that declaration, so a generator with another input needs no change here. Latents
are standard normal; walks use spherical interpolation by default, which keeps Gaussian latents at their typical
norm (White 2016, "Sampling Generative Networks").

Latent codes (InfoGAN, Chen et al. 2016) are drawn from their priors unless `--code NAME=VALUE` fixes them;
`--walk NAME` draws the paper's figure: one row per value of the categorical code, the continuous code NAME swept
along each row (-2 to 2 by default, beyond the training range [-1, 1] as the paper's Figure 2), z fixed.

A walk moves only what it walks: every other input is held at one draw for all its frames, the codes and any
Gaussian input besides the latent (LAPGAN's noise planes, one per pyramid level), so frames do not flicker.
`translate sample` draws all of them afresh for every sample.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translate.backends.base import Sampler
from translate.description import GeneratorInput, ModelDescription
from translate.errors import SamplingError
from translate.files import atomic_writer
from translate.imageio import make_grid, save_image, to_uint8

# Continuous codes are trained on [-1, 1]; the paper extrapolates to ±2. Values beyond ±CODE_LIMIT are refused as
# almost certainly a typo (the generator never saw anything near them).
CODE_LIMIT = 4.0
WALK_RANGE = (-2.0, 2.0)  # the paper's Figure 2: c2 and c3 varied from -2 to 2


def draw(item: GeneratorInput, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random values of one generator input from its prior: N(0, I) vectors, class (or category) indices uniform
    over its classes (or by its weights), or U(-1, 1) values for a continuous code."""
    if item.weights:
        weights = np.asarray(item.weights, dtype=np.float64)
        return rng.choice(len(item.classes), n, p=weights / weights.sum()).astype(np.int64)
    if item.kind in ("class", "categorical"):
        return rng.integers(0, len(item.classes), n).astype(np.int64)
    if item.kind == "uniform":
        return rng.uniform(-1.0, 1.0, (n, *item.shape)).astype(np.float32)
    return rng.standard_normal((n, *item.shape), dtype=np.float32)


def random_feeds(model: ModelDescription, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random draw of every input (export parity checks and int8 calibration use these)."""
    return {item.name: draw(item, n, rng) for item in model.inputs}


def feeds_for(
    model: ModelDescription,
    z: np.ndarray,
    labels: np.ndarray | None,
    seed: int,
    codes: dict[str, np.ndarray | float | int] | None = None,
) -> dict[str, np.ndarray]:
    """The generator's feeds: `z` for its latent, `labels` for its class input, `codes` (a value for every sample,
    or one for all) for the inputs they name (`held_inputs`), any other input drawn per sample from seed."""
    feeds = random_feeds(model, len(z), np.random.default_rng(seed + 1))
    feeds[model.latent.name] = z
    if model.class_input is not None:
        if labels is None:
            raise SamplingError("a class-conditional generator needs labels")
        feeds[model.class_input.name] = labels
    declared = {item.name: item for item in model.inputs}
    for name, value in (codes or {}).items():
        item = declared[name]
        feeds[name] = np.broadcast_to(np.asarray(value, dtype=item.dtype), (len(z), *item.shape)).copy()
    return feeds


# ----------------------------------------------------------------------------------------- latent codes


def _describe_codes(model: ModelDescription) -> str:
    """e.g. "cat (0 to 9), c1, c2 (continuous)"."""
    cats = [f"{c.name} (0 to {len(c.classes) - 1})" for c in model.codes if c.kind == "categorical"]
    conts = [c.name for c in model.codes if c.kind == "uniform"]
    return ", ".join([*cats, *([", ".join(conts) + " (continuous)"] if conts else [])])


def code_input(model: ModelDescription, name: str, option: str) -> GeneratorInput:
    """The code called `name`; a model without codes, or a name it lacks, is a usage error naming `option`."""
    if not model.codes:
        raise SamplingError(f"{option} needs a model with latent codes (infogan); this {model.recipe} model has none")
    for item in model.codes:
        if item.name == name:
            return item
    close = difflib.get_close_matches(name, [c.name for c in model.codes], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise SamplingError(f"{option} {name}: no such code{hint}; this model's codes are {_describe_codes(model)}")


def parse_codes(
    model: ModelDescription, given: Sequence[str] | Mapping[str, int | float | str]
) -> dict[str, int | float]:
    """`--code NAME=VALUE` options (or a mapping NAME → value) → {name: value}: a category index, or a continuous
    code's value, each checked against the model's codes."""
    if isinstance(given, Mapping):
        given = [f"{name}={value}" for name, value in given.items()]
    elif isinstance(given, str):  # one NAME=VALUE, not its characters
        given = [given]
    fixed: dict[str, int | float] = {}
    for text in given:
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise SamplingError(f"--code {text}: write NAME=VALUE, e.g. --code cat=3 or --code c1=0.5")
        item = code_input(model, name, "--code")
        if name in fixed:
            raise SamplingError(f"--code {name} is given twice")
        fixed[name] = _code_value(item, value, f"--code {text}")
    return fixed


def _code_value(item: GeneratorInput, value: str, where: str) -> int | float:
    if item.kind == "categorical":
        last = len(item.classes) - 1
        if not value.lstrip("-").isdigit() or not 0 <= int(value) <= last:
            raise SamplingError(f"{where}: {item.name} is categorical and takes a whole number from 0 to {last}")
        return int(value)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and abs(number) <= CODE_LIMIT):
        raise SamplingError(
            f"{where}: {item.name} is continuous and takes a number from -{CODE_LIMIT:g} to {CODE_LIMIT:g} "
            "(trained on -1 to 1)"
        )
    return number


def parse_range(text: str) -> tuple[float, float]:
    """`--range LOW,HIGH` → (low, high), within ±CODE_LIMIT."""
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SamplingError(f"--range {text}: write LOW,HIGH with LOW < HIGH, e.g. --range -2,2")
    if max(abs(low), abs(high)) > CODE_LIMIT:
        raise SamplingError(f"--range {text}: continuous codes take values from -{CODE_LIMIT:g} to {CODE_LIMIT:g}")
    return low, high


def held_inputs(
    model: ModelDescription, fixed: dict[str, int | float], seed: int
) -> dict[str, int | float | np.ndarray]:
    """What a walk holds for all its frames: every code (the fixed ones as given, the others one draw from their
    priors) and one draw of every Gaussian input besides the latent (e.g. LAPGAN's noise planes, (1, R, R) each)."""
    rng = np.random.default_rng(seed + 2)
    held: dict[str, int | float | np.ndarray] = {
        item.name: fixed.get(item.name, draw(item, 1, rng)[0].item()) for item in model.codes
    }
    latent = model.latent.name
    for item in model.inputs:
        if item.kind == "normal" and item.name != latent:
            held[item.name] = draw(item, 1, rng)[0]
    return held


def code_walk(
    sampler: Sampler, name: str, fixed: dict[str, int | float], *, steps: int, span: tuple[float, float], seed: int
) -> tuple[np.ndarray, int]:
    """The paper's figure: one row per value of the first categorical code not fixed (one row without one), the
    continuous code `name` swept from span[0] to span[1] in `steps` columns, z and the other inputs held.
    → (uint8 images (rows · steps, H, W, C), rows)."""
    model = sampler.model
    item = code_input(model, name, "--walk")
    if item.kind != "uniform":
        conts = ", ".join(c.name for c in model.codes if c.kind == "uniform") or "none in this model"
        raise SamplingError(
            f"--walk {name}: a categorical code; its values are the rows of a walk. Walk a continuous code: {conts}"
        )
    if name in fixed:
        raise SamplingError(f"--walk {name} and --code {name}=... exclude each other")
    if steps < 2:
        raise SamplingError("--walk needs at least 2 --steps along the row")
    rows_code = next((c for c in model.codes if c.kind == "categorical" and c.name not in fixed), None)
    row_values = np.arange(len(rows_code.classes)) if rows_code is not None else np.zeros(1, np.int64)
    sweep = np.linspace(span[0], span[1], steps, dtype=np.float32)
    codes: dict[str, np.ndarray | float | int] = dict(held_inputs(model, fixed, seed))
    codes[name] = np.tile(sweep, len(row_values))
    if rows_code is not None:
        codes[rows_code.name] = np.repeat(row_values, steps)
    z = np.repeat(latents(1, model.latent.shape[0], seed), len(row_values) * steps, axis=0)
    return generate(sampler, feeds_for(model, z, _labels_for(model, len(z), None), seed, codes)), len(row_values)


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
    return check_latents(z, dim, str(path))


def check_latents(z: np.ndarray, dim: int | None, where: str) -> np.ndarray:
    """Latents as float32 (N, D), a single vector as one row; another shape is an error naming `where`."""
    z = np.atleast_2d(z).astype(np.float32)
    if z.ndim != 2 or (dim is not None and z.shape[1] != dim):
        raise SamplingError(f"{where}: latents of shape {z.shape}, this model needs (N, {dim})")
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


@dataclass(frozen=True)
class Drawn:
    """Samples as `translate sample` draws them: uint8 (N, H, W, C) images, the latents used, and the number of
    columns of their grid (one row per class or category when the spread allows it; None: near-square)."""

    images: np.ndarray
    z: np.ndarray
    ncols: int | None


def draw_samples(
    sampler: Sampler,
    *,
    n: int,
    seed: int = 0,
    label: str | None = None,
    truncation: float | None = None,
    z: np.ndarray | None = None,
    codes: Sequence[str] | Mapping[str, int | float | str] = (),
) -> Drawn:
    """n samples (or one per row of `z`); `codes` (NAME=VALUE, or a mapping) fix latent codes, the others are drawn
    per sample."""
    model = sampler.model
    dim = model.latent.shape[0]
    fixed: dict[str, np.ndarray | float | int] = dict(parse_codes(model, codes))
    if z is not None:
        z = check_latents(np.asarray(z), dim, "latents")
        n = len(z)
    else:
        z = latents(n, dim, seed, truncation)
    # A conditional grid gets one row per class when the spread allows it; so does a free categorical code.
    rows = len(model.class_names) if label is None else 0
    spread = next((c for c in model.codes if c.kind == "categorical" and c.name not in fixed), None)
    if not model.class_names and spread is not None and n % len(spread.classes) == 0:
        rows = len(spread.classes)
        fixed[spread.name] = spread_labels(n, rows)
    images = generate(sampler, feeds_for(model, z, _labels_for(model, n, label), seed, fixed))
    return Drawn(images, z, n // rows if rows and n % rows == 0 else None)


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
    codes: Sequence[str] | Mapping[str, int | float | str] = (),
) -> list[Path]:
    """`translate sample`: n images as one near-square grid (FILE.png) or one PNG each (DIR/)."""
    z = load_latents(latents_file, sampler.model.latent.shape[0]) if latents_file is not None else None
    drawn = draw_samples(sampler, n=n, seed=seed, label=label, truncation=truncation, z=z, codes=codes)
    if save_latents_file is not None:
        save_latents(save_latents_file, drawn.z)
    as_dir = str(out).endswith(("/", "\\")) or out.is_dir() or not out.suffix
    return write_images(drawn.images, out, as_grid=not as_dir, ncols=drawn.ncols)


def walk_frames(
    sampler: Sampler,
    *,
    points: int = 4,
    steps: int = 16,
    method: str = "slerp",
    seed: int = 0,
    z: np.ndarray | None = None,
    labels: str | list[int | str] | None = None,
    label: str | None = None,
    codes: Sequence[str] | Mapping[str, int | float | str] = (),
) -> np.ndarray:
    """The frames of a closed walk, uint8 (T, H, W, C): through `points` random latents (or the rows of `z`) and
    back to the first, `steps` frames per leg; with `labels` (e.g. "3,8"), between those classes' embeddings with
    z fixed. Codes and other inputs are held at one draw (`codes` fixes some of them)."""
    model = sampler.model
    dim = model.latent.shape[0]
    held = held_inputs(model, parse_codes(model, codes), seed)  # a walk keeps its codes and level noise: only z moves
    if labels is not None:
        if not model.class_names:
            raise SamplingError("--labels needs a class-conditional model (cgan)")
        names = labels.split(",") if isinstance(labels, str) else labels
        classes = np.array([parse_label(str(x).strip(), list(model.class_names)) for x in names], np.int64)
        if len(classes) < 2:
            raise SamplingError("--labels needs at least two classes, e.g. --labels 3,8")
        embeddings = walk(sampler.embed(classes), steps, "lerp")  # embeddings are not Gaussian: straight lines
        fixed_z = np.repeat(latents(1, dim, seed), len(embeddings), axis=0)
        feeds = feeds_for(model, fixed_z, np.zeros(len(fixed_z), np.int64), seed, held)
        del feeds[model.class_input.name]  # the embedding stands in for the label
        return to_uint8(sampler.from_embedding(feeds, embeddings))
    start = check_latents(np.asarray(z), dim, "latents") if z is not None else latents(points, dim, seed)
    path = walk(start, steps, method)
    walk_label = label or ("0" if model.class_names else None)
    return generate(sampler, feeds_for(model, path, _labels_for(model, len(path), walk_label), seed, held))


def arithmetic_images(
    sampler: Sampler,
    expression: str,
    *,
    seed: int = 0,
    label: str | None = None,
    codes: Sequence[str] | Mapping[str, int | float | str] = (),
) -> np.ndarray:
    """Latent arithmetic on saved latents ("a.npy-b.npy+c.npy"): the result and 7 small perturbations of it (the
    DCGAN paper shows its results so), uint8 (8, H, W, C)."""
    model = sampler.model
    dim = model.latent.shape[0]
    held = held_inputs(model, parse_codes(model, codes), seed)
    z = arithmetic(expression)
    if z.shape[1] != dim:
        raise SamplingError(f"--arithmetic: latents have {z.shape[1]} dimensions, the model needs {dim}")
    noise = latents(7, dim, seed) * 0.25
    z = np.concatenate([z, z + noise]).astype(np.float32)
    return generate(sampler, feeds_for(model, z, _labels_for(model, len(z), label), seed, held))


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
    codes: Sequence[str] | Mapping[str, int | float | str] = (),
    walk_code: str | None = None,
    walk_range: str | None = None,
) -> Path:
    """`translate interpolate`: a closed latent walk (or class walk) as a looping GIF or a PNG strip; with
    `walk_code`, a latent code swept along rows (`code_walk`). `codes` (NAME=VALUE) fix codes; the others are held
    at one draw."""
    if out.suffix.lower() not in (".gif", ".png"):
        raise SamplingError(f"--out {out}: use a .gif (animation) or .png (strip) file name")
    model = sampler.model
    if walk_range is not None and walk_code is None:
        raise SamplingError("--range is the span of a --walk; give --walk NAME too")
    if walk_code is not None:
        if labels is not None or arithmetic_expression is not None or latents_file is not None:
            raise SamplingError("--walk draws its own figure; it takes no --labels, --arithmetic or --latents")
        span = parse_range(walk_range) if walk_range is not None else WALK_RANGE
        images, rows = code_walk(sampler, walk_code, parse_codes(model, codes), steps=steps, span=span, seed=seed)
        if out.suffix.lower() == ".png":
            save_image(out, make_grid(images, ncols=steps))
        else:  # one frame per step along the sweep, every row in it
            frames = images.reshape(rows, steps, *images.shape[1:]).swapaxes(0, 1)
            scale = max(1, 128 // images.shape[1])
            grids = np.stack([make_grid(frame, ncols=min(rows, 5)) for frame in frames])
            save_animation(grids.repeat(scale, axis=1).repeat(scale, axis=2), out)
        return out
    if arithmetic_expression is not None:
        images = arithmetic_images(sampler, arithmetic_expression, seed=seed, label=label, codes=codes)
        save_image(out.with_suffix(".png"), make_grid(images, ncols=len(images)))
        return out.with_suffix(".png")
    z = load_latents(latents_file, model.latent.shape[0]) if latents_file else None
    frames = walk_frames(
        sampler, points=points, steps=steps, method=method, seed=seed, z=z, labels=labels, label=label, codes=codes
    )
    if out.suffix.lower() == ".png":
        save_image(out, make_grid(frames, ncols=steps))
    else:
        # Small generators (e.g. 32 px digits) are enlarged so the animation is visible; nearest keeps pixels crisp.
        scale = max(1, 128 // frames.shape[1])
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
        save_animation(frames, out)
    return out
