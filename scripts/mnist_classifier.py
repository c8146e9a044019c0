"""Train the small CNN digit classifier that scripts/evaluate_mnist.py uses to score MNIST generators.

    python scripts/mnist_folders.py --out /tmp/mnist
    python scripts/mnist_classifier.py --data /tmp/mnist --out /tmp/mnist-classifier.safetensors

Trains on DATA/train/<digit>/*.png and reports the accuracy on DATA/heldout/<digit>/*.png (the layout written
by scripts/mnist_folders.py; digit folders "0".."9"). Images are resized to 32x32 (PIL bicubic) and scaled to
[-1, 1] as x / 127.5 - 1, as the generators' outputs are, with light random affine jitter (shift up to 2 px,
rotation up to 10 degrees, scale 0.9-1.1) while training. Adam with a one-cycle schedule, on the CPU with 2
threads (OpenMP waiting passively, see below): 100 s on 2 cores shared with other jobs for the default 12 epochs. The
weights go to OUT with ``safetensors.torch.save_file``; the metadata holds ``heldout_accuracy`` and the
``command``. Exits with status 1 when the held-out accuracy is below ``--min-accuracy`` (the file is written
anyway).

With ``--onnx FILE`` (or ``--onnx FILE --from CHECKPOINT`` to skip training) the classifier is also written as the
feature network ``translate evaluate --features`` takes: float32 (N, 1, 32, 32) in [0, 1] → ``features`` (N, 128)
and ``logits`` (N, 10), the digit names in the metadata; the shipped ``pretrained/mnist-features.onnx`` is that file.

``build_classifier()`` builds the network: ``forward(x)`` gives (N, 10) logits, ``features(x)`` the (N, 128)
penultimate activations used for the Fréchet distance. Load a trained one with ``load_classifier(path)``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

# Before torch loads OpenMP: with spinning worker threads, 2 threads on 2 cores shared with other jobs ran ~10x
# slower than 1 thread (786 vs 82 ms per step); passive waiting removes that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

IMAGE_SIZE = 32
NUM_CLASSES = 10
FEATURE_DIM = 128
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class DigitClassifier(nn.Module):
    """Three conv blocks (32, 64, 128 channels, each halving the size) and a 128-unit hidden layer."""

    def __init__(self, num_classes: int = NUM_CLASSES, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(
            *block(1, 32),  # 32 -> 16
            *block(32, 64),  # 16 -> 8
            *block(64, 128),  # 8 -> 4
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, (N, 128), of (N, 1, 32, 32) images in [-1, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (N, 10), of (N, 1, 32, 32) images in [-1, 1]."""
        return self.head(self.body(x))


class FeatureNetwork(nn.Module):
    """The classifier behind translate's feature-network convention: [0, 1] images in, features and logits out."""

    def __init__(self, classifier: DigitClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.classifier.features(x * 2 - 1)  # the classifier was trained on x / 127.5 - 1
        return features, self.classifier.head(features)


def export_features(model: nn.Module, out: Path, metadata: dict[str, str]) -> None:
    """`model` as an ONNX feature network for `translate evaluate --features` (opset 18, any batch size)."""
    import json

    import onnx

    model = FeatureNetwork(model.eval().cpu()).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE),)
    program = torch.onnx.export(
        model, example, None, dynamo=True, input_names=["image"], output_names=["features", "logits"],
        dynamic_shapes=({0: batch},), opset_version=18, external_data=False, optimize=True, verbose=False,
    )  # fmt: skip
    proto = program.model_proto
    for item in (*proto.graph.node, *proto.graph.value_info, *proto.graph.input, *proto.graph.output):
        del item.metadata_props[:]  # the exporter's stack traces: absolute source paths
    del proto.metadata_props[:]
    entries = {
        **metadata,
        "classes": json.dumps([str(d) for d in range(NUM_CLASSES)]),
        "input": f"float32 (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}) gray in [0, 1]",
        "outputs": "features (N, 128): the penultimate layer; logits (N, 10)",
    }
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))


def build_classifier() -> nn.Module:
    """A fresh, untrained digit classifier for 1x32x32 inputs in [-1, 1]."""
    return DigitClassifier()


def load_classifier(path: Path, device: str = "cpu") -> tuple[nn.Module, dict[str, str]]:
    """The trained classifier from a safetensors file (in eval mode on `device`) and the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    model = build_classifier()
    model.load_state_dict(load_file(str(path), device="cpu"))
    return model.eval().to(device), metadata


def load_digits(root: Path, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Images under root/<digit>/ as ``(N, size, size) uint8`` (gray, PIL bicubic resize) and ``(N,) int64`` digits."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    for digit in range(NUM_CLASSES):
        folder = root / str(digit)
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(path) as image:
                gray = image.convert("L")
                if gray.size != (size, size):
                    gray = gray.resize((size, size), Image.Resampling.BICUBIC)
                images.append(np.asarray(gray, dtype=np.uint8))
            labels.append(digit)
    if not images:
        raise FileNotFoundError(f"{root}: no images in digit folders 0..9")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W) uint8`` -> ``(N, 1, H, W) float32`` in [-1, 1] (x / 127.5 - 1)."""
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def jitter(x: torch.Tensor, generator: torch.Generator, shift_px: float = 2.0) -> torch.Tensor:
    """Random affine jitter of a [-1, 1] batch: shift ±shift_px, rotation ±10°, scale 0.9-1.1; background stays -1."""
    n, _, h, _ = x.shape
    u = torch.rand(n, 4, generator=generator) * 2 - 1  # uniform in [-1, 1]
    angle = u[:, 0] * (10 * torch.pi / 180)
    scale = 1 + 0.1 * u[:, 1]
    shift = u[:, 2:] * (2 * shift_px / h)  # normalized coordinates span 2 over the image
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder with train/<digit>/ and heldout/<digit>/")
    parser.add_argument("--out", type=Path, default=None, help="output .safetensors file")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and jitter (default 0)")
    parser.add_argument("--min-accuracy", type=float, default=0.97, help="exit 1 below this held-out accuracy")
    parser.add_argument("--onnx", type=Path, default=None, help="also write the ONNX feature network here")
    parser.add_argument("--from", dest="source", type=Path, default=None, help="export this checkpoint, no training")
    args = parser.parse_args(argv)
    if args.source is not None:
        if args.onnx is None:
            parser.error("--from needs --onnx")
        model, metadata = load_classifier(args.source)
        export_features(model, args.onnx, metadata)
        print(f"wrote {args.onnx}")
        return 0
    if args.data is None or args.out is None:
        parser.error("training needs --data and --out")

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()

    train_images, train_labels = load_digits(args.data / "train")
    held_images, held_labels = load_digits(args.data / "heldout")
    x_train, y_train = to_tensor(train_images), torch.from_numpy(train_labels)
    x_held, y_held = to_tensor(held_images), torch.from_numpy(held_labels)
    print(f"train {len(x_train)} images, heldout {len(x_held)} images, {IMAGE_SIZE}x{IMAGE_SIZE}")

    model = build_classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    held_accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total_loss = 0.0
        for i in range(0, len(order), args.batch_size):
            index = order[i : i + args.batch_size]
            logits = model(jitter(x_train[index], generator))
            loss = F.cross_entropy(logits, y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.detach().item() * len(index)
        held_accuracy = accuracy(model, x_held, y_held)
        elapsed = time.perf_counter() - start
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {total_loss / len(x_train):.4f}  "
            f"heldout accuracy {held_accuracy:.4f}  {elapsed:.0f}s"
        )

    from safetensors.torch import save_file

    command = shlex.join(["python", *sys.argv] if argv is None else ["python", "scripts/mnist_classifier.py", *argv])
    metadata = {
        "heldout_accuracy": f"{held_accuracy:.4f}",
        "heldout_images": str(len(x_held)),
        "train_images": str(len(x_train)),
        "epochs": str(args.epochs),
        "seed": str(args.seed),
        "input": f"1x{IMAGE_SIZE}x{IMAGE_SIZE} gray, x / 127.5 - 1",
        "command": command,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata=metadata)
    if args.onnx is not None:
        export_features(model, args.onnx, metadata)
    elapsed = time.perf_counter() - start
    print(f"heldout accuracy: {held_accuracy:.4f} ({len(x_held)} images); {elapsed:.1f}s; saved {args.out}")
    if held_accuracy < args.min_accuracy:
        print(f"error: heldout accuracy {held_accuracy:.4f} is below {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
