"""`translate evaluate`: how good a generator or translator is, as measured figures.

Generated (or translated) images and real ones go through one feature network (deploy/features.py); the figures
compare the two feature sets:

* FID, the Fréchet distance between Gaussians fitted to each set (Heusel et al. 2017);
* KID, the unbiased squared MMD under the cubic polynomial kernel, mean ± std over random subsets (Bińkowski et
  al. 2018), which unlike FID has no bias at small n;
* precision and recall (Kynkäänniemi et al. 2019, k = 3): the share of generated images inside the real set's
  k-NN balls, and of real images inside the generated set's.

The statistics are torch-fidelity's (the library the FID network comes from), fed features from any network.
Also, when they apply: per-class figures (class-conditional generators, `--real` with one folder per class), the
share of samples a classifier-headed feature network assigns to the requested class (for InfoGAN's categorical
codes: each value's majority class and the purity), paired per-image L1 / PSNR /
SSIM / ink IoU (translators, files in INPUT and `--real` that share names, beside "output = input"), and a
memorisation check: each sample's nearest training image in feature space, against held-out real images' nearest.

MODEL may also be a folder of images made by any tool: they are scored as a translator's outputs would be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translate.deploy.features import Extracted, FeatureNetwork, extract
from translate.deploy.metrics import psnr, ssim
from translate.deploy.sampling import Sampler, feeds_for, latents, spread_labels
from translate.errors import ImageDecodeError, ModelError
from translate.imageio import load_image, make_grid, resize, save_image, to_float, to_uint8, walk_images

K_NEAREST = 3  # Kynkäänniemi et al. 2019's default neighbourhood
KID_SUBSETS = 100  # torch-fidelity's defaults, after Bińkowski et al.
KID_SUBSET_SIZE = 1000
INK = 128  # a pixel darker than mid-grey is ink (glyphs are mostly white page, where L1 and SSIM reward a blank)
NEAREST_SHOWN = 8  # rows of the memorisation picture: the samples closest to a training image
NEIGHBOURS_SHOWN = 4
BATCH = 64
# Folders of images are compared in RGB: a gray image decodes to three equal channels, whose L1, PSNR, SSIM, ink IoU
# and luma features are the one channel's, so gray folders score as a one-channel translator's outputs would.
FOLDER_CHANNELS = 3

Advance = Callable[[str, int, int], None]  # (what, done now, total): progress from a caller that draws it


@dataclass
class RealImages:
    """Decoded real images (uint8, any sizes), their paths relative to the folder, and what could not be read."""

    images: list[np.ndarray]
    names: list[Path]
    skipped: list[str] = field(default_factory=list)


def load_folder(
    folder: Path, channels: int, *, limit: int | None = None, seed: int = 0, what: str = "--real"
) -> RealImages:
    """Every image under `folder` (a seeded random `limit` of them when there are more), corrupt ones skipped."""
    if not folder.is_dir():
        raise ModelError(f"{what} {folder}: no such folder")
    paths = walk_images(folder).images
    if not paths:
        raise ModelError(f"{what} {folder}: no images found")
    if limit is not None and len(paths) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(len(paths), limit, replace=False))
        paths = [paths[i] for i in chosen]
    found = RealImages([], [])
    for path in paths:
        try:
            found.images.append(load_image(path, channels))
            found.names.append(path.relative_to(folder))
        except (ImageDecodeError, OSError) as exc:
            found.skipped.append(str(exc))
    if not found.images:
        raise ModelError(f"{what} {folder}: none of its {len(paths)} images could be read")
    return found


def stacks(images: list[np.ndarray], size: int = BATCH) -> Iterator[np.ndarray]:
    """Batches of same-shape images in their order (a network takes one shape per batch)."""
    start = 0
    while start < len(images):
        end = start + 1
        while end < len(images) and end - start < size and images[end].shape == images[start].shape:
            end += 1
        yield np.stack(images[start:end])
        start = end


# ------------------------------------------------------------------------------------------------ statistics


def fidelity(fake: np.ndarray, real: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """FID, KID (mean and std over subsets) and precision / recall between feature sets (N, D) and (M, D)."""
    import torch
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    if len(fake) < 2 or len(real) < 2:
        raise ModelError(f"FID needs at least 2 images a side, got {len(fake)} generated and {len(real)} real")
    f1 = torch.from_numpy(np.ascontiguousarray(fake, dtype=np.float64))
    f2 = torch.from_numpy(np.ascontiguousarray(real, dtype=np.float64))
    fid = fid_statistics_to_metric(fid_features_to_statistics(f1), fid_features_to_statistics(f2), verbose=False)
    kid = kid_features_to_metric(
        f1, f2, kid_subsets=KID_SUBSETS, kid_subset_size=kid_subset_size(len(f1), len(f2)), rng_seed=seed,
        verbose=False,
    )  # fmt: skip
    figures = {"fid": fid[KEY_METRIC_FID], "kid_mean": kid[KEY_METRIC_KID_MEAN], "kid_std": kid[KEY_METRIC_KID_STD]}
    if min(len(f1), len(f2)) > K_NEAREST:
        prc = prc_features_to_metric(
            f1, f2, prc_neighborhood=K_NEAREST, prc_batch_size=10000, save_cpu_ram=len(f1) * len(f2) > 1e8,
            verbose=False,
        )  # fmt: skip
        figures |= {"precision": prc[KEY_METRIC_PRECISION], "recall": prc[KEY_METRIC_RECALL]}
    return {name: float(value) for name, value in figures.items()}


def kid_subset_size(n_fake: int, n_real: int) -> int:
    """torch-fidelity's 1,000, or half the smaller set: subsets as large as a set would all be that set, and the
    spread over subsets (the reported ± std) would be zero whatever the data."""
    return max(2, min(KID_SUBSET_SIZE, min(n_fake, n_real) // 2))


def nearest(queries: np.ndarray, keys: np.ndarray, k: int = 1, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (N, k) from each query to its k nearest keys, and those keys' indices (N, k)."""
    k = min(k, len(keys))
    key_norms = (keys**2).sum(axis=1)
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        squared = np.maximum((q**2).sum(axis=1)[:, None] + key_norms[None, :] - 2 * q @ keys.T, 0.0)
        index = np.argpartition(squared, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(squared, index, axis=1)
        order = np.argsort(picked, axis=1)
        indices.append(np.take_along_axis(index, order, axis=1))
        distances.append(np.sqrt(np.take_along_axis(picked, order, axis=1)))
    return np.concatenate(distances), np.concatenate(indices)


def memorization(fake: np.ndarray, real: np.ndarray, train: np.ndarray) -> dict[str, Any]:
    """How close samples sit to the training set, against how close held-out real images sit to it.

    A generator that copies has samples far nearer their closest training image than unseen real images are;
    `closer_than_real_1pct` is the share of samples nearer than the closest 1% of held-out images.
    """
    fake_d = nearest(fake, train)[0][:, 0]
    real_d = nearest(real, train)[0][:, 0]
    quantiles = (0.0, 0.01, 0.05, 0.5)

    def spread(d: np.ndarray) -> dict[str, float]:
        return {f"q{round(q * 100):02d}": float(np.quantile(d, q)) for q in quantiles}

    return {
        "generated": spread(fake_d),
        "heldout": spread(real_d),
        "median_ratio": float(np.median(fake_d) / max(np.median(real_d), 1e-12)),
        "closer_than_real_1pct": float(np.mean(fake_d < np.quantile(real_d, 0.01))),
        "train_images": len(train),
    }


def classified(predicted: np.ndarray, requested: np.ndarray | None, classes: tuple[str, ...]) -> dict[str, Any]:
    """With requested classes: the share assigned to each; without: the share of samples per predicted class."""
    if requested is None:
        counts = np.bincount(predicted, minlength=len(classes)) / len(predicted)
        return {"share": {c: float(s) for c, s in zip(classes, counts, strict=True)}, "min_share": float(counts.min())}
    per_class = {}
    for index, name in enumerate(classes):
        mask = requested == index
        if mask.any():
            per_class[name] = float(np.mean(predicted[mask] == index))
    return {
        "accuracy": float(np.mean(predicted == requested)),
        "per_class": per_class,
        "min_class": min(per_class.values()),
    }


def code_purity(predicted: np.ndarray, values: np.ndarray, size: int, classes: tuple[str, ...]) -> dict[str, Any]:
    """How well one categorical latent code (InfoGAN's) names a class: for each of its `size` values, the class
    predicted most often among the samples drawn with it (`values`) and that class's share; `purity`, the share of
    all samples whose predicted class is the majority class of their value (the InfoGAN paper's 5% error: 0.95);
    `distinct`, how many different classes the values map to."""
    table: dict[str, dict[str, Any]] = {}
    agreeing = 0
    for value in range(size):
        found = predicted[values == value]
        if not len(found):
            continue
        counts = np.bincount(found, minlength=len(classes))
        majority = int(counts.argmax())
        agreeing += int(counts[majority])
        table[str(value)] = {"class": classes[majority], "share": float(counts[majority] / len(found)), "n": len(found)}
    return {
        "purity": agreeing / max(len(predicted), 1),
        "distinct": len({row["class"] for row in table.values()}),
        "values": table,
    }


# ------------------------------------------------------------------------------------------------ generators


def _class_map(model_classes: tuple[str, ...], network_classes: tuple[str, ...]) -> np.ndarray | None:
    """Model class index → the feature network's index for the same name, when it knows all of them."""
    if not network_classes or not set(model_classes) <= set(network_classes):
        return None
    return np.array([network_classes.index(name) for name in model_classes], np.int64)


def evaluate_generator(
    sampler: Sampler,
    network: FeatureNetwork,
    real_dir: Path,
    *,
    n: int = 10_000,
    seed: int = 0,
    train_dir: Path | None = None,
    picture: Path | None = None,
    advance: Advance | None = None,
) -> dict[str, Any]:
    """Figures for an image generator: n samples (classes spread evenly) against the real images in real_dir."""
    model = sampler.model
    classes = tuple(model.class_names)
    requested = spread_labels(n, len(classes)) if classes else None
    feeds = feeds_for(model, latents(n, model.latent.shape[0], seed), requested, seed)

    def samples(rows: np.ndarray) -> np.ndarray:
        return to_uint8(sampler({name: value[rows] for name, value in feeds.items()}))

    tick = _ticker(advance)
    fake = extract(
        network, (samples(np.arange(s, min(s + BATCH, n))) for s in range(0, n, BATCH)), tick("generated", n)
    )
    real = load_folder(real_dir, network.channels, limit=n, seed=seed)
    real_found = extract(network, stacks(real.images), tick("real", len(real.images)))
    report: dict[str, Any] = {
        "kind": "generator",
        "features": network.name,
        "generated": n,
        "real": len(real.images),
        **fidelity(fake.features, real_found.features, seed=seed),
    }
    if classes:
        report["per_class"] = _per_class(fake.features, requested, classes, real, real_found, seed)
    mapping = _class_map(classes, network.classes) if classes else None
    if fake.predicted is not None and (mapping is not None or not classes):
        wanted = mapping[requested] if mapping is not None else None
        report["classified"] = classified(fake.predicted, wanted, network.classes)
    if fake.predicted is not None:  # categorical codes (InfoGAN's, a cGAN's clusters) against the classes they hold
        report["codes"] = {
            code.name: code_purity(fake.predicted, feeds[code.name], len(code.classes), network.classes)
            for code in model.codes
            if code.kind == "categorical"
        }
    if train_dir is not None:
        train = load_folder(train_dir, network.channels, what="--memorization")
        train_found = extract(network, stacks(train.images), tick("training", len(train.images)))
        report["memorization"] = memorization(fake.features, real_found.features, train_found.features)
        if picture is not None:
            _nearest_picture(fake.features, train_found.features, samples, train, picture)
            report["memorization"]["picture"] = str(picture)
    skipped = real.skipped + (train.skipped if train_dir is not None else [])
    report["skipped"] = skipped
    return report


def _per_class(
    fake: np.ndarray,
    requested: np.ndarray,
    classes: tuple[str, ...],
    real: RealImages,
    real_found: Extracted,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Figures per class, when the real images sit in one top-level folder per class name (else none)."""
    folders = np.array([name.parts[0] if len(name.parts) > 1 else "" for name in real.names])
    if not set(classes) <= set(folders.tolist()):
        return {}
    return {
        name: fidelity(fake[requested == index], real_found.features[folders == name], seed=seed)
        for index, name in enumerate(classes)
        if (requested == index).sum() >= 2 and (folders == name).sum() >= 2
    }


def _nearest_picture(
    fake: np.ndarray, train: np.ndarray, samples: Callable[[np.ndarray], np.ndarray], found: RealImages, out: Path
) -> None:
    """Rows of: a sample, then its nearest training images, for the samples nearest the training set."""
    distances, indices = nearest(fake, train, NEIGHBOURS_SHOWN)
    rows = np.argsort(distances[:, 0])[:NEAREST_SHOWN]
    shown = samples(rows)
    h, w, c = shown.shape[1:]
    tiles = []
    for row, image in zip(rows, shown, strict=True):
        tiles.append(image)
        for index in indices[row]:
            neighbour = found.images[index]
            neighbour = neighbour if neighbour.shape[2] == c else np.repeat(neighbour[..., :1], c, axis=2)
            tiles.append(resize(neighbour, (w, h)))
    save_image(out, make_grid(np.stack(tiles), ncols=1 + NEIGHBOURS_SHOWN))


# ------------------------------------------------------------------------------------------------ translators


def evaluate_translator(
    translate: Callable[[list[np.ndarray]], list[np.ndarray]],
    channels: int,
    network: FeatureNetwork,
    input_dir: Path,
    real_dir: Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    advance: Advance | None = None,
) -> dict[str, Any]:
    """Figures for a translator: INPUT translated, against the target domain's real images; paired when names match.

    `translate` maps same-size uint8 (H, W, C) images to their translations (the backend, wrapped by the caller).
    """
    inputs = load_folder(input_dir, channels, limit=limit, seed=seed, what="--input")
    real = load_folder(real_dir, channels, limit=limit, seed=seed)
    tick = _ticker(advance)
    outputs: list[np.ndarray] = []
    step = tick("translated", len(inputs.images))
    for batch in stacks(inputs.images, BATCH):
        outputs += translate(list(batch))
        step(len(batch))
    report = _against_real("translator", network, outputs, real, seed=seed, tick=tick)
    pairs = paired(RealImages(outputs, inputs.names), real, inputs)
    if pairs:
        report["paired"] = pairs
    report["skipped"] = inputs.skipped + real.skipped
    return report


def evaluate_images(
    images_dir: Path,
    network: FeatureNetwork,
    real_dir: Path,
    *,
    input_dir: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    advance: Advance | None = None,
) -> dict[str, Any]:
    """Figures for a folder of images made by any tool, as a translator's outputs get them: FID / KID /
    precision-recall against the real images, paired figures for the names the two folders share, and with
    `input_dir` (the images they were made from, same names) "output = input" beside them."""
    outputs = load_folder(images_dir, FOLDER_CHANNELS, limit=limit, seed=seed, what="MODEL")
    real = load_folder(real_dir, FOLDER_CHANNELS, limit=limit, seed=seed)
    inputs = None
    if input_dir is not None:
        inputs = load_folder(input_dir, FOLDER_CHANNELS, limit=limit, seed=seed, what="--input")
    report = _against_real("images", network, outputs.images, real, seed=seed, tick=_ticker(advance))
    pairs = paired(outputs, real, inputs)
    if pairs:
        report["paired"] = pairs
    report["skipped"] = outputs.skipped + real.skipped + (inputs.skipped if inputs is not None else [])
    return report


def _against_real(
    kind: str,
    network: FeatureNetwork,
    outputs: list[np.ndarray],
    real: RealImages,
    *,
    seed: int,
    tick: Callable[[str, int], Callable[[int], None]],
) -> dict[str, Any]:
    """The report's head for images made from inputs (a translator's or a folder's): counts and the feature-space
    figures against the real images."""
    fake = extract(network, stacks(outputs), tick("generated", len(outputs)))
    real_found = extract(network, stacks(real.images), tick("real", len(real.images)))
    return {
        "kind": kind,
        "features": network.name,
        "generated": len(outputs),
        "real": len(real.images),
        **fidelity(fake.features, real_found.features, seed=seed),
    }


def paired(outputs: RealImages, real: RealImages, inputs: RealImages | None = None) -> dict[str, Any]:
    """Per-image L1, PSNR, SSIM and ink IoU of outputs and their targets, matched by relative path without the
    extension, and with `inputs`, of the same-named inputs themselves ("output = input", the figure a translator
    must beat); empty when no names match.

    With `inputs`, a pair is a name found in all three sets, so both figures are means over the same images. Targets
    and inputs of another size than their output are resized to it."""
    targets = _by_name(real)
    sources = _by_name(inputs) if inputs is not None else {}
    rows: dict[str, list[float]] = {}
    matched = 0
    for name, output in zip(outputs.names, outputs.images, strict=True):
        target, source = targets.get(name.with_suffix("")), sources.get(name.with_suffix(""))
        if target is None or (inputs is not None and source is None):
            continue
        matched += 1
        h, w = output.shape[:2]
        target = target if target.shape[:2] == (h, w) else resize(target, (w, h))
        compared = {"output": output}
        if source is not None:
            compared["input"] = source if source.shape[:2] == (h, w) else resize(source, (w, h))
        for label, image in compared.items():
            for metric, value in _pair_figures(image, target).items():
                rows.setdefault(f"{label}_{metric}", []).append(value)
    if not matched:
        return {}
    return {"pairs": matched, **{name: float(np.mean(values)) for name, values in rows.items()}}


def _by_name(found: RealImages) -> dict[Path, np.ndarray]:
    """Images keyed by their relative path without the extension (a.png and a.jpg are the same picture)."""
    return {name.with_suffix(""): image for name, image in zip(found.names, found.images, strict=True)}


def _pair_figures(image: np.ndarray, target: np.ndarray) -> dict[str, float]:
    a, b = to_float(image[None]), to_float(target[None])  # (1, C, H, W) in [-1, 1]
    ink_a, ink_b = image.mean(axis=2) < INK, target.mean(axis=2) < INK
    union = np.logical_or(ink_a, ink_b).sum()
    return {
        "l1": float(np.abs(a - b).mean() / 2),  # in [0, 1] units of the pixel range
        "psnr": min(psnr(a, b), 100.0),  # identical images: capped, so means stay finite
        "ssim": ssim(a, b),
        "ink_iou": float(np.logical_and(ink_a, ink_b).sum() / union) if union else 1.0,
    }


def _ticker(advance: Advance | None) -> Callable[[str, int], Callable[[int], None]]:
    """Per-stage step functions that report (what, done, total) to `advance`, or do nothing without it."""

    def tick(what: str, total: int) -> Callable[[int], None]:
        done = 0

        def step(count: int) -> None:
            nonlocal done
            done += count
            if advance is not None:
                advance(what, done, total)

        return step

    return tick


# ------------------------------------------------------------------------------------------------ the command


@dataclass(frozen=True)
class EvaluateRequest:
    """What `translate evaluate` was asked (see the command's help)."""

    model: str
    real: Path
    input: Path | None = None
    direction: str | None = None
    n: int = 10_000
    seed: int = 0
    features: str = "inception"
    memorization: Path | None = None
    picture: Path | None = None
    device: str = "auto"


def images_folder(model: str) -> Path | None:
    """The folder MODEL names when it is a folder of images rather than a run folder (which has checkpoints/);
    None when MODEL is not a folder or is a run folder."""
    path = Path(model).expanduser()
    if not path.is_dir() or (path / "checkpoints").is_dir():
        return None
    if not walk_images(path).images:
        raise ModelError(f"{path}: neither a run folder (no checkpoints/) nor a folder of images (none found)")
    return path


def run_evaluate(request: EvaluateRequest, advance: Advance | None = None) -> dict[str, Any]:
    """Load the model and the feature network, compute every figure that applies, and return the report."""
    from translate.deploy.features import load_features
    from translate.deploy.inference import run_model
    from translate.deploy.models import kind_of, load_sampler, load_translator, resolve_model

    folder = images_folder(request.model)
    if folder is not None:
        return _evaluate_folder(folder, request, advance)
    path = resolve_model(request.model)
    kind = kind_of(path)
    if kind == "translator" and request.input is None:
        raise ModelError(f"{path}: a translator; give --input DIR (images to translate) and --real DIR (the target)")
    if kind == "generator" and (request.input is not None or request.direction is not None):
        raise ModelError(f"{path}: an image generator; it takes no --input or --direction, only --real DIR")
    if request.memorization is not None and kind == "translator":
        raise ModelError("--memorization is for image generators (does it copy its training set?)")
    network = load_features(request.features, request.device)
    if kind == "generator":
        sampler = load_sampler(str(path), request.device)
        report = evaluate_generator(
            sampler,
            network,
            request.real,
            n=request.n,
            seed=request.seed,
            train_dir=request.memorization,
            picture=request.picture,
            advance=advance,
        )
        described = sampler.description
    else:
        translator = load_translator(str(path), request.direction, request.device)

        def translate(images: list[np.ndarray]) -> list[np.ndarray]:
            return list(run_model(translator, np.stack(images)))

        assert request.input is not None
        report = evaluate_translator(
            translate,
            translator.channels,
            network,
            request.input,
            request.real,
            limit=request.n,
            seed=request.seed,
            advance=advance,
        )
        described = translator.description
    return {"model": str(path), "backend": described, "seed": request.seed, **report}


def _evaluate_folder(folder: Path, request: EvaluateRequest, advance: Advance | None) -> dict[str, Any]:
    """`translate evaluate DIR --real DIR [--input DIR]`: a folder of images scored as a translator's outputs."""
    from translate.deploy.features import load_features

    if request.direction is not None or request.memorization is not None:
        raise ModelError(
            f"{folder}: a folder of images; it takes --real DIR (and --input DIR), not --direction or --memorization"
        )
    network = load_features(request.features, request.device)
    report = evaluate_images(
        folder, network, request.real, input_dir=request.input, limit=request.n, seed=request.seed, advance=advance
    )
    return {"model": str(folder), "backend": "images", "seed": request.seed, **report}


def report_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The report as (figure, value) rows for a table; every number is also in the JSON."""
    made = "in the folder" if report["kind"] == "images" else "generated"
    rows = [
        ("model", f"{report['model']} ({report['backend']})"),
        ("features", report["features"]),
        ("images", f"{report['generated']} {made}, {report['real']} real"),
        ("FID", f"{report['fid']:.3f}"),
        ("KID", f"{report['kid_mean']:.5f} ± {report['kid_std']:.5f}"),
    ]
    if "precision" in report:
        rows.append(("precision / recall", f"{report['precision']:.3f} / {report['recall']:.3f} (k = {K_NEAREST})"))
    for name, figures in report.get("per_class", {}).items():
        rows.append((f"class {name}", f"FID {figures['fid']:.3f}, KID {figures['kid_mean']:.5f}"))
    if "classified" in report:
        found = report["classified"]
        if "accuracy" in found:
            rows.append(("classified as requested", f"{found['accuracy']:.2%} (lowest class {found['min_class']:.2%})"))
        else:
            shares = ", ".join(f"{c} {s:.1%}" for c, s in found["share"].items())
            rows.append(("classes drawn", f"{shares} (lowest {found['min_share']:.1%})"))
    for name, found in report.get("codes", {}).items():
        rows.append((f"code {name}: purity", f"{found['purity']:.2%} ({found['distinct']} distinct classes)"))
        mapped = ", ".join(f"{v}→{row['class']} {row['share']:.0%}" for v, row in found["values"].items())
        rows.append((f"code {name}: value → class", mapped))
    if "paired" in report:
        p = report["paired"]
        figures = (
            ("l1", "L1", ".4f"),
            ("psnr", "PSNR (dB)", ".2f"),
            ("ssim", "SSIM", ".4f"),
            ("ink_iou", "ink IoU", ".4f"),
        )
        for metric, label, fmt in figures:
            baseline = f" (output = input: {p['input_' + metric]:{fmt}})" if "input_" + metric in p else ""
            rows.append((label, f"{p['output_' + metric]:{fmt}}{baseline}"))
        rows.append(("pairs", str(p["pairs"])))
    if "memorization" in report:
        m = report["memorization"]
        g, h = m["generated"], m["heldout"]
        rows.append(("nearest training image", f"median {g['q50']:.3f} (held-out real: {h['q50']:.3f})"))
        rows.append(("  closest 1%", f"{g['q01']:.3f} (held-out real: {h['q01']:.3f})"))
        rows.append(("  nearer than real's 1%", f"{m['closer_than_real_1pct']:.2%} of samples"))
        if "picture" in m:
            rows.append(("  picture", m["picture"]))
    if report["skipped"]:
        rows.append(("skipped", f"{len(report['skipped'])} unreadable images, e.g. {report['skipped'][0]}"))
    return rows
