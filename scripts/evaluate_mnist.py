"""Score an MNIST generator with the digit classifier of scripts/mnist_classifier.py.

    python scripts/evaluate_mnist.py --model runs/cgan-mnist --classifier /tmp/mnist-classifier.safetensors \
        --data /tmp/mnist --n 1000 --seed 0 --device cpu --json /tmp/cgan-mnist-eval.json

MODEL is anything ``translate.deploy.models.load_sampler`` accepts (a run folder, a checkpoint). The generator gets
z ~ N(0, I) from ``np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)``.

* Conditional model (``num_classes > 0``; class names must be the digits "0".."9"): labels are spread evenly
  (n / num_classes per class, the first n mod num_classes classes get one more) and the report gives the
  fraction classified as the requested digit, overall and per digit.
* Unconditional model: the report gives the predicted-digit histogram (fraction per digit) and its minimum.
* Both: the Fréchet distance between classifier features (the 128-d penultimate layer) of the n generated
  images and of n real held-out digits from DATA/heldout (all of them when there are fewer than n), and, as
  references, the classifier's accuracy on those real digits and the Fréchet distance between n real training
  digits (DATA/train) and the same held-out digits: about what a perfect generator would score at this n.

Generated images with 3 channels are made gray by the channel mean; sizes other than 32 are resized to 32x32
with ``F.interpolate(..., antialias=True)``, bicubic by default (``--resize bilinear`` to change): bicubic matches
the PIL bicubic resize of the real digits (real 28 px held-out digits passed through it score FD 0.03 against
themselves, through bilinear FD 19, twice the real-vs-real reference); values are clipped to [-1, 1]. Real digits
are resized like the classifier's training data (PIL bicubic) and scaled by x / 127.5 - 1. The generator runs on
``--device``, the classifier on the CPU.
Prints Markdown; ``--json PATH`` also writes every number as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

# Before torch loads OpenMP (see scripts/mnist_classifier.py): spinning worker threads crawl on shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_classifier import IMAGE_SIZE, load_classifier, load_digits, to_tensor

from translate.deploy.sampling import Sampler, feeds_for

DIGITS = tuple(str(d) for d in range(10))


def even_labels(n: int, num_classes: int) -> np.ndarray:
    """``(n,) int64`` class indices, n // num_classes of each, the first n % num_classes classes one more."""
    return np.sort(np.arange(n, dtype=np.int64) % num_classes)


def class_digits(class_names: list[str], num_classes: int) -> np.ndarray:
    """The digit each class index stands for; the class names must be "0".."9"."""
    if len(class_names) != num_classes:
        raise SystemExit(f"error: the model has {num_classes} classes but {len(class_names)} class names")
    bad = [name for name in class_names if name not in DIGITS]
    if bad:
        raise SystemExit(f"error: class names must be the digits 0..9 to be scored, got {bad}")
    return np.asarray([int(name) for name in class_names], dtype=np.int64)


def generate(
    sampler: Sampler, z: np.ndarray, labels: np.ndarray | None, batch_size: int, resize: str = "bicubic"
) -> torch.Tensor:
    """Generated images as ``(N, 1, 32, 32) float32`` in [-1, 1] on the CPU."""
    chunks: list[torch.Tensor] = []
    for i in range(0, len(z), batch_size):
        part = None if labels is None else labels[i : i + batch_size]
        out = np.asarray(sampler(feeds_for(sampler.model, z[i : i + batch_size], part, 0)), dtype=np.float32)
        if out.ndim != 4 or out.shape[0] != len(z[i : i + batch_size]):
            raise SystemExit(f"error: the sampler returned shape {out.shape}, expected (N, C, H, W)")
        x = torch.from_numpy(out)
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] != 1:
            raise SystemExit(f"error: cannot score {x.shape[1]}-channel images (need 1 or 3)")
        if tuple(x.shape[2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode=resize, antialias=True, align_corners=False)
        chunks.append(x.clamp(-1.0, 1.0))
    return torch.cat(chunks)


@torch.no_grad()
def classify(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, 10)`` and features ``(N, F)`` as float64 arrays."""
    probs, feats = [], []
    for i in range(0, len(x), batch_size):
        part = x[i : i + batch_size]
        probs.append(torch.softmax(model(part), dim=1).double().numpy())
        feats.append(model.features(part).double().numpy())
    return np.concatenate(probs), np.concatenate(feats)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``."""
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        # Features that are 0 for every image (dead ReLUs) make the product singular; sqrtm warns but is fine.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():  # nudge both covariances (as pytorch-fid does)
            offset = np.eye(len(s1)) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def subset(count: int, n: int, seed: int, stream: int) -> np.ndarray:
    """Sorted indices of min(n, count) of `count` items, chosen by (seed, stream)."""
    if count <= n:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, stream]).choice(count, size=n, replace=False))


def markdown(rows: list[tuple[str, ...]], header: tuple[str, ...] = ("metric", "value")) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="generator: run folder or checkpoint (translate.deploy.models)")
    parser.add_argument("--classifier", type=Path, required=True, help="weights from scripts/mnist_classifier.py")
    parser.add_argument("--data", type=Path, required=True, help="folder from scripts/mnist_folders.py")
    parser.add_argument("--n", type=int, default=1000, help="number of generated images (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of z and of real-image subsets (default 0)")
    parser.add_argument("--device", default="cpu", help="device of the generator (default cpu)")
    parser.add_argument("--batch-size", type=int, default=250, help="generator batch size (default 250)")
    parser.add_argument(
        "--resize", choices=("bicubic", "bilinear"), default="bicubic", help="resize of non-32 px outputs (antialiased)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2 (the Fréchet distance needs a covariance)")

    torch.set_num_threads(2)
    from translate.deploy.models import load_sampler
    from translate.errors import ModelError

    classifier, classifier_meta = load_classifier(args.classifier, "cpu")
    try:
        sampler: Sampler = load_sampler(args.model, device=args.device)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = sampler.model
    latent_dim, class_names = model.latent.shape[0], list(model.class_names)
    conditional = bool(class_names)

    z = np.random.default_rng(args.seed).standard_normal((args.n, latent_dim), dtype=np.float32)
    labels = even_labels(args.n, len(class_names)) if conditional else None
    fake = generate(sampler, z, labels, args.batch_size, args.resize)
    fake_probs, fake_feats = classify(classifier, fake)
    predicted = fake_probs.argmax(axis=1)

    held_images, held_labels = load_digits(args.data / "heldout")
    keep = subset(len(held_images), args.n, args.seed, 1)
    real_probs, real_feats = classify(classifier, to_tensor(held_images[keep]))
    real_accuracy = float((real_probs.argmax(axis=1) == held_labels[keep]).mean())
    fd = frechet_distance(fake_feats, real_feats)

    fd_reference: float | None = None
    if (args.data / "train").is_dir():
        train_images, _ = load_digits(args.data / "train")
        _, train_feats = classify(classifier, to_tensor(train_images[subset(len(train_images), args.n, args.seed, 2)]))
        fd_reference = frechet_distance(train_feats, real_feats)

    result: dict[str, Any] = {
        "model": args.model,
        "classifier": str(args.classifier),
        "classifier_heldout_accuracy_at_training": classifier_meta.get("heldout_accuracy"),
        "n": args.n,
        "seed": args.seed,
        "conditional": conditional,
        "generator": {
            "latent_dim": latent_dim,
            "num_classes": len(class_names),
            "class_names": class_names,
            "channels": model.channels,
            "image_size": model.image_size,
        },
        "n_real": len(keep),
        "frechet_distance": fd,
        "frechet_distance_real_train_vs_heldout": fd_reference,
        "classifier_accuracy_real_heldout": real_accuracy,
        "resize": args.resize if model.image_size != IMAGE_SIZE else None,
        "mean_top_probability": float(fake_probs.max(axis=1).mean()),  # not a quality score: noise gets 1.0
    }
    kind = f"conditional, {len(class_names)} classes" if conditional else "unconditional"
    rows = [("model", f"`{args.model}`"), ("kind", kind), ("generated images", str(args.n))]

    if conditional:
        assert labels is not None
        requested = class_digits(class_names, len(class_names))[labels]
        hits = predicted == requested
        per_class = {
            str(d): {"requested": int((requested == d).sum()), "accuracy": float(hits[requested == d].mean())}
            for d in np.unique(requested)
        }
        result["accuracy"] = float(hits.mean())
        result["per_class_accuracy"] = per_class
        rows.append(("classified as the requested digit", f"{hits.mean():.4f}"))
    else:
        histogram = np.bincount(predicted, minlength=10) / len(predicted)
        result["predicted_histogram"] = {str(d): float(histogram[d]) for d in range(10)}
        result["predicted_histogram_min"] = float(histogram.min())
        result["predicted_histogram_max"] = float(histogram.max())
        rows.append(("least frequent predicted digit", f"{int(histogram.argmin())} ({histogram.min():.4f})"))
        rows.append(("most frequent predicted digit", f"{int(histogram.argmax())} ({histogram.max():.4f})"))

    rows += [
        (f"Fréchet distance (classifier features, vs {len(keep)} real held-out)", f"{fd:.3f}"),
        (
            "reference: Fréchet distance, real train vs real held-out",
            "n/a" if fd_reference is None else f"{fd_reference:.3f}",
        ),
        ("reference: classifier accuracy on the real held-out digits", f"{real_accuracy:.4f}"),
    ]
    print(markdown(rows))
    print()
    if conditional:
        table = [(d, str(v["requested"]), f"{v['accuracy']:.4f}") for d, v in per_class.items()]
        print(markdown(table, ("digit", "requested", "classified as requested")))
    else:
        hist = result["predicted_histogram"]
        print(markdown([(d, f"{hist[d]:.4f}") for d in DIGITS], ("digit", "fraction predicted")))

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
