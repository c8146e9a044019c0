"""Feature networks for `translate evaluate`: images in, one feature vector per image out.

* `inception`: the Inception-v3 of the FID paper (Heusel et al. 2017), as torch-fidelity builds it (the TF1
  graph's weights and resizing, 2048-d pool features). The weights are downloaded once into the cache with a
  progress bar and checked against a pinned sha256, the way official models are.
* an ONNX file: any model that maps float32 (N, C, H, W) images in [0, 1] to (N, D) features, run by ONNX
  Runtime; C, H and W are read from its input, and images are converted and resized to fit. A second output named
  `logits` with a `classes` entry (JSON list) in the model's metadata also gives each image's predicted class.
* `mnist`: the digit classifier shipped in `pretrained/` as such a file (scripts/mnist_classifier.py): Inception
  features mean little for 32 px digits, and this needs no download.

Images are uint8 (N, H, W, C) as decoded or generated; gray images are repeated to RGB, RGB made gray by ITU-R
601 luma (Pillow's "L"), as the network needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from translate.errors import ModelError
from translate.imageio import resize

# torch-fidelity's release of the FID Inception weights (converted from the TF graph pytorch-fid and the paper use).
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
BATCH = 64


@dataclass
class Extracted:
    """Features (N, D) float64 and, for a network with a classifier head, the predicted class per image."""

    features: np.ndarray
    predicted: np.ndarray | None = None  # (N,) int64, indices into the network's `classes`


class FeatureNetwork(Protocol):
    name: str  # what the report calls it: "inception", "mnist", a file name
    channels: int  # what images it takes: 1 or 3
    classes: tuple[str, ...]  # its classifier's classes, () when it has none

    def __call__(self, images: np.ndarray) -> Extracted: ...


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (N, H, W, C) with C in {1, 3} as `channels` channels (gray → repeated, RGB → ITU-R 601 luma)."""
    have = images.shape[-1]
    if have == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # Pillow's L conversion
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def batches(images: np.ndarray, size: int = BATCH) -> Iterable[np.ndarray]:
    for start in range(0, len(images), size):
        yield images[start : start + size]


@dataclass
class OnnxFeatures:
    """An ONNX feature network run by ONNX Runtime (see the module docstring for what the file must be)."""

    path: Path
    device: str = "auto"
    name: str = ""
    channels: int = field(init=False)
    classes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        from translate.backends.onnxruntime import create_session

        self.session, _ = create_session(self.path, self.device)
        self.name = self.name or self.path.name
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{self.path}: a feature network takes one (N, C, H, W) image input")
        c, h, w = inputs[0].shape[1:]
        if not all(isinstance(v, int) for v in (c, h, w)) or c not in (1, 3):
            raise ModelError(
                f"{self.path}: input shape {inputs[0].shape} must fix C (1 or 3), H and W, so images can be fitted"
            )
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{self.path}: the image input must be float32 in [0, 1], not {inputs[0].type}")
        self.channels, self.size = c, (w, h)
        self.input = inputs[0].name
        self.output = outputs[0].name
        names = [o.name for o in outputs]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.classes = tuple(json.loads(meta["classes"])) if "logits" in names and "classes" in meta else ()
        self.outputs = [self.output, "logits"] if self.classes else [self.output]

    def __call__(self, images: np.ndarray) -> Extracted:
        images = to_channels(images, self.channels)
        if images.shape[1:3] != self.size[::-1]:
            images = np.stack([resize(image, self.size) for image in images])
        x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        found = self.session.run(self.outputs, {self.input: x})
        features = np.asarray(found[0], dtype=np.float64)
        if features.ndim != 2 or len(features) != len(images):
            raise ModelError(f"{self.path}: output {self.output!r} is {features.shape}, not (N, D) features")
        predicted = np.asarray(found[1]).argmax(axis=1).astype(np.int64) if self.classes else None
        return Extracted(features, predicted)


class InceptionFeatures:
    """The FID Inception-v3's 2048-d pool features (torch-fidelity's network, our verified download)."""

    name = "inception"
    channels = 3
    classes: tuple[str, ...] = ()

    def __init__(self, device: str = "auto", progress: bool = True) -> None:
        import torch
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        from translate.core.engine import resolve_device

        path = inception_weights(progress)
        self.device = resolve_device(device)
        # torch-fidelity reads the file with a full unpickler; it only ever gets this file after its sha256 matched
        # the pinned release and `weights_only` loading (which runs no code) showed it holds nothing but tensors.
        _check_tensors_only(path)
        with torch.random.fork_rng(devices=[]):  # building the network draws initial weights: leave the seed alone
            network = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
        self.network = network.to(self.device).eval()

    def __call__(self, images: np.ndarray) -> Extracted:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(to_channels(images, 3).transpose(0, 3, 1, 2))).to(self.device)
        with torch.inference_mode():
            (features,) = self.network(x)  # uint8 in: the network resizes to 299 and scales as the TF graph did
        return Extracted(features.double().cpu().numpy())


def inception_weights(progress: bool = True) -> str:
    """The cached Inception weights file, downloaded (and verified) on first use."""
    from translate.data.known import cache_dir, download, record_download, verify_download
    from translate.errors import DatasetError

    path = cache_dir() / "features" / INCEPTION_URL.rsplit("/", 1)[1]
    if path.is_file():
        if verify_download(path, INCEPTION_URL) == INCEPTION_SHA256:
            return str(path)
        raise DatasetError(f"{path} is not the FID Inception weights (sha256 differs). Delete it and run again.")
    path.parent.mkdir(parents=True, exist_ok=True)
    sha256 = download(INCEPTION_URL, path, expected_sha256=INCEPTION_SHA256, progress=progress)
    record_download(INCEPTION_URL, path, sha256)
    return str(path)


def _check_tensors_only(path: str) -> None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's own message suggests weights_only=False, which is exactly what must not happen
        raise ModelError(f"{path} does not hold plain tensors. Delete it and run again.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state dict. Delete it and run again.")


def load_features(spec: str, device: str = "auto", progress: bool = True) -> FeatureNetwork:
    """`--features`: inception, a shipped name (mnist) or an .onnx file."""
    if spec == "inception":
        try:
            return InceptionFeatures(device, progress)
        except ModuleNotFoundError as exc:
            if exc.name != "torch_fidelity":
                raise
            raise ModelError("--features inception needs torch-fidelity: pip install torch-fidelity") from None
    shipped = shipped_features()
    if spec in shipped:
        return OnnxFeatures(shipped[spec], device, name=spec)
    path = Path(spec)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise ModelError(f"--features {spec}: no such file")
        return OnnxFeatures(path, device)
    raise ModelError(f"--features {spec!r}: use inception, {', '.join(shipped)} or an .onnx file")


def shipped_features() -> dict[str, Path]:
    """name → file of the feature networks shipped in pretrained/ (its manifest's `features`)."""
    from translate.deploy.models import pretrained_dir

    manifest = pretrained_dir() / "manifest.json"
    entries = json.loads(manifest.read_text(encoding="utf-8")).get("features", []) if manifest.is_file() else []
    return {entry["name"]: pretrained_dir() / entry["file"] for entry in entries}


def extract(
    network: FeatureNetwork, images: Iterable[np.ndarray], advance: Callable[[int], Any] | None = None
) -> Extracted:
    """The network over batches of same-size uint8 (N, H, W, C) images, concatenated."""
    found = []
    for batch in images:
        found.append(network(batch))
        if advance is not None:
            advance(len(batch))
    predicted = [f.predicted for f in found]
    return Extracted(
        np.concatenate([f.features for f in found]),
        np.concatenate(predicted) if predicted and all(p is not None for p in predicted) else None,
    )
