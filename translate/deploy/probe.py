"""`translate probe`: what a trained discriminator learned, read by a linear classifier (the DCGAN paper's §5.1).

Radford et al. used a discriminator trained without labels as a feature extractor: every convolution's output
max-pooled to a 4×4 grid, flattened and concatenated, then a regularised linear classifier trained on those
features of a labelled set. Here the classifier is scikit-learn's multinomial logistic regression on
standardised features, fitted on one split of a folder with one sub-folder per class and scored on the rest
(or on `--heldout`); a discriminator at its random initialisation, probed the same way, is the baseline that says
how much of the accuracy training put there.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from translate.deploy.evaluate import RealImages, load_folder, stacks
from translate.errors import CheckpointError, ModelError
from translate.imageio import resize, to_float

if TYPE_CHECKING:
    import torch

POOL = 4  # each convolution's output max-pooled to POOL × POOL, as in the paper
HELD_OUT = 0.2  # of each class, when no --heldout folder is given


@dataclass(frozen=True)
class ProbeRequest:
    model: str
    data: Path
    heldout: Path | None = None
    network: str | None = None  # which discriminator (default: D, or D_B for translators)
    seed: int = 0
    max_iter: int = 1000


def load_discriminator(model: str, name: str | None, *, trained: bool = True) -> tuple[torch.nn.Module, Any, str]:
    """The discriminator `name` of a checkpoint (trained, or as the recipe initialises it) and its config."""
    import torch

    from translate.core import checkpoint
    from translate.core.engine import Engine
    from translate.deploy.models import resolve_checkpoint
    from translate.recipes import recipe_of
    from translate.recipes.restore import load_config

    path = resolve_checkpoint(model)
    ckpt = checkpoint.read(path)
    spec = recipe_of(ckpt)
    config = load_config(ckpt, spec)
    stored = [m for m in ckpt.meta.get("modules", []) if m.startswith("D")]
    if not stored:
        raise CheckpointError(
            f"{path}: holds no discriminator (shipped models keep only the generator); probe a run folder"
        )
    name = name or ("D" if "D" in stored else "D_B" if "D_B" in stored else stored[0])
    if name not in stored:
        raise ModelError(f"--network {name}: {path} holds {', '.join(stored)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)  # the recipe's own initialisation: the untrained baseline
        modules = spec.build(config, Engine("cpu")).modules()
    network = modules[name]
    if trained:
        checkpoint.load_module(path, name, network)
    return network.eval(), config, name


def conv_features(network: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Every Conv2d output of `network` on uint8 (N, H, W, C) images, max-pooled to 4×4, concatenated (N, F)."""
    import torch
    import torch.nn.functional as F

    found: list[torch.Tensor] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: found.append(F.adaptive_max_pool2d(out, POOL).flatten(1)))
        for module in network.modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    try:
        # A class-conditional discriminator refuses to score without labels, after its convolutions have run.
        with torch.inference_mode(), contextlib.suppress(ValueError):
            network(torch.from_numpy(to_float(images)))
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(found, dim=1).double().numpy()


def _fitted(images: list[np.ndarray], side: int) -> list[np.ndarray]:
    return [image if image.shape[:2] == (side, side) else resize(image, (side, side)) for image in images]


def _labels(found: RealImages) -> tuple[np.ndarray, list[str]]:
    folders = [name.parts[0] if len(name.parts) > 1 else "" for name in found.names]
    classes = sorted(set(folders))
    if len(classes) < 2 or "" in classes:
        raise ModelError("probe data needs one sub-folder per class (at least two), every image inside one")
    return np.array([classes.index(f) for f in folders]), classes


def run_probe(request: ProbeRequest) -> dict[str, Any]:
    """Fit the linear probe on the trained discriminator's features and on an untrained one's; held-out accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    trained, config, name = load_discriminator(request.model, request.network)
    channels, side = config.data.channels or 3, config.data.image_size
    data = load_folder(request.data, channels, what="--data")
    labels, classes = _labels(data)
    if request.heldout is not None:
        test = load_folder(request.heldout, channels, what="--heldout")
        test_labels = np.array([classes.index(n.parts[0]) if n.parts[0] in classes else -1 for n in test.names])
        if (test_labels < 0).any():
            raise ModelError(f"--heldout {request.heldout}: its class folders must be among {', '.join(classes)}")
        train_images, test_images, y_train, y_test = data.images, test.images, labels, test_labels
    else:
        rng = np.random.default_rng(request.seed)
        test_mask = np.zeros(len(labels), bool)
        for k in range(len(classes)):
            members = np.flatnonzero(labels == k)
            test_mask[rng.choice(members, max(1, round(HELD_OUT * len(members))), replace=False)] = True
        train_images = [im for im, t in zip(data.images, test_mask, strict=True) if not t]
        test_images = [im for im, t in zip(data.images, test_mask, strict=True) if t]
        y_train, y_test = labels[~test_mask], labels[test_mask]

    untrained, _, _ = load_discriminator(request.model, name, trained=False)
    report: dict[str, Any] = {"model": request.model, "network": name, "classes": classes}
    report |= {"train_images": len(train_images), "test_images": len(test_images), "image_size": side}
    for label, network in (("trained", trained), ("untrained", untrained)):
        x_train = np.concatenate([conv_features(network, b) for b in stacks(_fitted(train_images, side))])
        x_test = np.concatenate([conv_features(network, b) for b in stacks(_fitted(test_images, side))])
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=request.max_iter))
        probe.fit(x_train, y_train)
        report[f"{label}_accuracy"] = float(probe.score(x_test, y_test))
        report["features"] = x_train.shape[1]
    report["chance"] = float(np.bincount(y_test).max() / len(y_test))
    report["skipped"] = data.skipped
    return report
