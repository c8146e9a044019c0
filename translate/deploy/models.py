"""Resolve what `--model` names and load it as a backend for inference.

MODEL may be a run folder (its newest checkpoint is used), a checkpoint or .onnx file, a shipped model's name or an
official CycleGAN/pix2pix generator's name (translate.deploy.official fetches those). Torch is imported only when a
PyTorch backend is actually built.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate.description import ModelDescription
from translate.errors import BackendError, ModelError, UsageError

if TYPE_CHECKING:
    from translate.deploy.inference import Translator
    from translate.deploy.sampling import Sampler


DEFAULT_SAMPLER = "mnist-clusters"
EXPORTS = (".onnx", ".xml")  # exported models: ONNX files, and OpenVINO IR (the .xml beside its .bin)
BACKENDS = ("auto", "onnxruntime", "openvino")  # what runs an exported model (`--backend`)


def pretrained_dir() -> Path:
    """The folder of generators shipped with the package (the repository's pretrained/)."""
    return Path(str(resources.files("translate.pretrained")))


def shipped_models() -> dict[str, dict[str, Any]]:
    """name → manifest entry of every shipped model."""
    manifest = pretrained_dir() / "manifest.json"
    if not manifest.is_file():
        return {}
    return {entry["name"]: entry for entry in json.loads(manifest.read_text(encoding="utf-8"))["models"]}


@dataclass(frozen=True)
class NamedModel:
    """A model that `--model NAME` finds by name alone, as `translate models` lists it."""

    name: str
    recipe: str
    source: str  # "shipped" (inside the package) or "official" (downloaded on first use)
    cached: bool  # usable without a download
    description: str


def named_models() -> list[NamedModel]:
    """The shipped models, then the official CycleGAN and pix2pix generators."""
    from translate.deploy import official

    rows = [
        NamedModel(name, entry["recipe"], "shipped", True, _shipped_description(entry))
        for name, entry in shipped_models().items()
    ]
    rows += [NamedModel(name, family, "official", cached, text) for family, name, text, cached in official.describe()]
    return rows


def _shipped_description(entry: dict[str, Any]) -> str:
    onnx = f" (ONNX export: {entry['onnx']})" if entry.get("onnx") else ""
    return entry.get("description", "") + onnx


def resolve_model(model: str) -> Path:
    """The file MODEL names: a path (run folder, .safetensors checkpoint or .onnx export) or, when no such path
    exists, a shipped model (`mnist-dcgan`, or `mnist-dcgan.onnx` for its ONNX export) or an official generator
    (`horse2zebra`, `pix2pix-edges2shoes`: downloaded and converted on first use)."""
    path = Path(model).expanduser()
    if path.is_dir():
        from translate.core import checkpoint  # imports torch: only for run folders

        latest = checkpoint.latest_checkpoint(path)
        if latest is None:
            raise ModelError(
                f"{path}: a folder without checkpoints (expected {path / 'checkpoints'}/step_*.safetensors)"
            )
        return latest
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", *EXPORTS):
            raise ModelError(
                f"{path}: not a model file; give a run folder, a .safetensors checkpoint, an .onnx file or an "
                "OpenVINO .xml file"
            )
        return path
    shipped = shipped_models()
    if model in shipped:
        return pretrained_dir() / shipped[model]["file"]
    exports = {entry["onnx"] for entry in shipped.values() if entry.get("onnx")}
    if model in exports:
        return pretrained_dir() / model
    from translate.deploy import official  # after the paths: the ONNX path need not import the download code

    if model in official.OFFICIAL_MODELS:
        return official.fetch(model)
    close = difflib.get_close_matches(model, [*shipped, *exports, *official.OFFICIAL_MODELS], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ModelError(
        f"{model}: no such run folder or model file, nor a model name{hint}; `translate models` lists the names"
    )


def resolve_checkpoint(model: str) -> Path:
    """Like resolve_model, for what needs the PyTorch weights (export, training)."""
    path = resolve_model(model)
    if path.suffix.lower() in EXPORTS:
        kind = "an ONNX export" if path.suffix.lower() == ".onnx" else "an OpenVINO IR export"
        raise ModelError(f"{path}: {kind}; this needs the .safetensors checkpoint (or run folder) it came from")
    return path


def kind_of(path: Path) -> str:
    """What the model file at `path` holds: "translator" or "generator" (an export's metadata says; no session)."""
    if path.suffix.lower() == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return "generator" if ModelDescription.from_metadata(props, path).is_generator else "translator"
    if path.suffix.lower() == ".xml":  # an OpenVINO IR: its description is in the model's rt_info
        from translate.backends.openvino import read_description, read_model

        return "generator" if read_description(read_model(path)[1], path).is_generator else "translator"
    from translate.recipes.restore import kind_of_checkpoint

    return kind_of_checkpoint(path)


def choose_backend(path: Path, backend: str, device: str) -> str:
    """What runs the model at `path`: "pytorch" for checkpoints; for exports `backend`, where "auto" is OpenVINO
    on an x86 CPU when it is installed, else ONNX Runtime (which also serves CUDA). An IR is OpenVINO's alone."""
    from translate.backends import (
        openvino as openvino_runtime,  # torch-free; imports OpenVINO only when asked whether it is here
    )

    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    suffix = path.suffix.lower()
    if suffix not in EXPORTS:
        if backend != "auto":
            raise UsageError(f"{path}: a PyTorch checkpoint; --backend is for exported models (`translate export`)")
        return "pytorch"
    if suffix == ".xml":
        if backend == "onnxruntime":
            raise BackendError(f"{path}: an OpenVINO IR, which ONNX Runtime cannot run; use --backend openvino")
        return "openvino"
    if backend != "auto":
        return backend
    from translate.backends.onnxruntime import cuda_devices

    cpu = device.lower() == "cpu" or (device.lower() == "auto" and cuda_devices() == 0)
    return "openvino" if cpu and openvino_runtime.is_x86() and openvino_runtime.openvino_installed() else "onnxruntime"


def load_translator(
    model: str, direction: str | None = None, device: str = "auto", backend: str = "auto"
) -> Translator:
    """A ready-to-run backend for `translate apply`: for exports the one `choose_backend` picks, else PyTorch."""
    path = resolve_model(model)
    runner = choose_backend(path, backend, device)
    if runner == "openvino":
        from translate.backends.openvino import OpenVinoTranslator

        return OpenVinoTranslator(path, direction, device)
    if runner == "onnxruntime":
        from translate.backends.onnxruntime import OnnxTranslator

        return OnnxTranslator(path, direction, device)
    from translate.backends.pytorch import TorchTranslator
    from translate.core.engine import resolve_device
    from translate.recipes.restore import kind_of_checkpoint, load_generator

    if direction == "b2a":
        check_official_direction(path)
    if kind_of_checkpoint(path) == "generator":
        raise ModelError(
            f"{path}: an image generator, not a translator; use it with `translate sample` / `interpolate`"
        )
    module, description = load_generator(path, direction or "a2b")
    return TorchTranslator(module, resolve_device(device), description)


def load_sampler(model: str | None = None, device: str = "auto", backend: str = "auto") -> Sampler:
    """A ready-to-run image generator for `translate sample` / `interpolate` (default: the shipped mnist-clusters);
    exports run on the backend `choose_backend` picks."""
    path = resolve_model(model or DEFAULT_SAMPLER)
    runner = choose_backend(path, backend, device)
    if runner == "openvino":
        from translate.backends.openvino import OpenVinoSampler

        return OpenVinoSampler(path, device)
    if runner == "onnxruntime":
        from translate.backends.onnxruntime import OnnxSampler

        return OnnxSampler(path, device)
    from translate.backends.pytorch import TorchSampler
    from translate.core.engine import resolve_device
    from translate.recipes.restore import kind_of_checkpoint, load_generator

    if kind_of_checkpoint(path) != "generator":
        raise ModelError(f"{path}: a translator; use `translate apply` with it")
    module, description = load_generator(path, "generate")
    return TorchSampler(module, resolve_device(device), description)


def check_official_direction(path: Path) -> None:
    """An official release holds one generator per file: name the official model that goes the other way."""
    from translate.core import checkpoint
    from translate.deploy.official import OFFICIAL_MODELS, other_way

    official = (checkpoint.read(path).meta.get("info") or {}).get("official")
    if official in OFFICIAL_MODELS:
        raise ModelError(other_way(official, "b2a"))
