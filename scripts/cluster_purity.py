"""How well `cgan --set clusters=K` clusters a labelled folder: purity of k-means against spectral clustering.

    python scripts/mnist_folders.py --out /tmp/mnist
    python scripts/cluster_purity.py --data /tmp/mnist/train --clusters 20 30 50

Both cluster the same pixels (translate.data.clusters' features: each image square-cropped to the training size,
at most 32 px); the labels (the sub-folder names) are used only to score. Purity: the share of images that belong
to their cluster's majority class. Prints a Markdown table: purity, the smallest cluster, the classes that are no
cluster's majority, and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from translate.data import clusters
from translate.data.folders import Domain, scan_classes


def purity(labels: np.ndarray, classes: np.ndarray) -> tuple[float, int]:
    """(share of images in their cluster's majority class, number of classes that lead no cluster)."""
    leaders = {int(np.bincount(classes[labels == c]).argmax()) for c in np.unique(labels)}
    agree = sum(int(np.bincount(classes[labels == c]).max()) for c in np.unique(labels))
    return agree / len(classes), len(np.unique(classes)) - len(leaders)


def kmeans(domain: Domain, k: int, size: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    features = clusters._features(domain, np.arange(len(domain)), min(size, clusters.FEATURE_SIZE))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(features)


def spectral(domain: Domain, k: int, size: int, seed: int) -> np.ndarray:
    return clusters.cluster_images(domain, k, image_size=size, seed=seed)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder with one sub-folder per class")
    parser.add_argument("--clusters", type=int, nargs="+", default=[30])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    domain, classes, names = scan_classes(args.data, None)
    classes = np.asarray(classes)
    print(f"{len(domain)} images of {len(names)} classes\n")
    print("| clustering | clusters | purity | smallest cluster | classes leading no cluster | seconds |")
    print("|---|---|---|---|---|---|")
    for k in args.clusters:
        for name, method in (("k-means on pixels", kmeans), ("spectral, 10-NN graph (translate)", spectral)):
            start = time.perf_counter()
            labels = method(domain, k, args.image_size, args.seed)
            seconds = time.perf_counter() - start
            share, orphans = purity(labels, classes)
            smallest = int(np.bincount(labels, minlength=k).min())
            print(f"| {name} | {k} | {share:.3f} | {smallest} | {orphans} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
