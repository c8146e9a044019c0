"""Classes for unlabelled images: k-means on their pixels, for a cGAN conditioned on clusters.

A self-conditioned GAN (Liu et al. 2020, "Diverse Image Generation via Self-Conditioned GANs") trains a
class-conditional GAN on clusters of the unlabelled training images and samples each cluster as often as it holds
images: the generator can no longer drop a part of the data without D noticing for that cluster, which is what
an unconditional GAN does when it collapses onto some modes. The paper clusters D's features and re-clusters as
training goes; here the partition is made once, on the pixels of the images at a small size, before training, so
it is fixed, deterministic for a seed, and a resumed run sees the same clusters.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console

from translate.data.folders import Domain, square_crop
from translate.errors import DataError

FEATURE_SIZE = 32  # px: the images are clustered at most this large (MNIST's 28 px as they are, up to 32)
FIT_LIMIT = 10_000  # images k-means is fitted on (a seeded subset of larger sets; every image is then assigned)
CHUNK = 4096  # images turned into features and assigned at a time (bounded memory on large folders)
RESTARTS = 4  # k-means runs from different seeded starts; the one of lowest inertia is kept


def _features(domain: Domain, indices: np.ndarray, size: int) -> np.ndarray:
    """(len(indices), size·size·C) float32 pixels in [0, 1], each image square-cropped to `size` px."""
    return np.stack([square_crop(domain.image(int(i)), size).reshape(-1) for i in indices]).astype(np.float32) / 255


def cluster_images(
    domain: Domain, k: int, *, image_size: int, seed: int, console: Console | None = None
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Each image's cluster (N,) int64 in 0..k-1, numbered from the largest cluster down, and each cluster's share
    of the images. Deterministic for (images, k, image_size, seed)."""
    from sklearn.cluster import KMeans

    n = len(domain)
    if k < 2 or k > n:
        raise DataError(f"{domain.root}: clusters={k} needs from 2 to {n} clusters (the folder holds {n} images)")
    size = min(image_size, FEATURE_SIZE)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, FIT_LIMIT, replace=False)) if n > FIT_LIMIT else np.arange(n)
    if console is not None:
        console.print(f"clustering {n} images into {k} clusters (k-means on {size} px pixels)", highlight=False)
    kmeans = KMeans(n_clusters=k, n_init=RESTARTS, random_state=seed).fit(_features(domain, fit, size))
    labels = np.concatenate(
        [kmeans.predict(_features(domain, np.arange(s, min(s + CHUNK, n)), size)) for s in range(0, n, CHUNK)]
    )
    counts = np.bincount(labels, minlength=k)
    if (counts == 0).any():  # duplicates: fewer distinct images than clusters
        raise DataError(
            f"{domain.root}: only {int((counts > 0).sum())} of {k} clusters hold images (too few distinct images); "
            "ask for fewer clusters"
        )
    order = np.argsort(-counts, kind="stable")  # cluster 0 the largest: names that do not depend on k-means' order
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels].astype(np.int64), tuple(float(c) / n for c in counts[order])
