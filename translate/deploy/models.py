"""Resolve what `--model` names and load it as a backend for inference.

MODEL may be a run folder (its newest checkpoint is used), a model file that a backend runs (a checkpoint, an .onnx
file, an OpenVINO IR), a shipped model's name or an official CycleGAN/pix2pix generator's name
(translate.deploy.official fetches those). Which backend runs a file is the registry's to say
(translate/backends/__init__.py); torch is imported only when a PyTorch backend is actually built.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate.backends import backend_choices, get_backend, is_export, model_files, runners
from translate.errors import BackendError, ModelError, UsageError

if TYPE_CHECKING:
    from translate.backends.base import Backend, Sampler, Translator


DEFAULT_SAMPLER = "mnist-clusters"


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
    """The file MODEL names: a path (a run folder, or a file some backend runs) or, when no such path exists, a
    shipped model (`mnist-dcgan`, or `mnist-dcgan.onnx` for its ONNX export) or an official generator
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
        _runners(path)  # refuses any other file
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
    if is_export(path):
        what = model_files()[path.suffix.lower()]
        raise ModelError(f"{path}: {what}; this needs the .safetensors checkpoint (or run folder) it came from")
    return path


def kind_of(path: Path) -> str:
    """What the model file at `path` holds: "translator" or "generator", as the first backend that runs it reads
    it (an export's metadata; a checkpoint's header): no session, no network."""
    return _runners(path)[0].kind_of(path)


def choose_backend(path: Path, backend: str, device: str) -> str:
    """The name of the backend that runs the model at `path`: `backend` when it is named and runs the file; for
    "auto", the first in the registry that runs the file and suits `device`, else the first that runs it.

    So checkpoints run on PyTorch (and `--backend` is refused for them), an OpenVINO IR on OpenVINO alone, and an
    .onnx file, for "auto", on OpenVINO on an x86 CPU where it is installed, else on ONNX Runtime (which also serves
    CUDA). A backend named explicitly is tried wherever it runs the file, installed or not, so its absence is
    reported with the fix."""
    choices = backend_choices()
    if backend not in choices:
        close = difflib.get_close_matches(backend, choices, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--backend {backend}: use one of {', '.join(choices)}{hint}")
    able = _runners(path)
    if backend == "auto":
        return next((runner for runner in able if runner.suits(device)), able[0]).name
    if any(runner.name == backend for runner in able):
        return backend
    what = model_files()[path.suffix.lower()]
    if not any(runner.name in choices for runner in able):  # a file only `--backend auto` takes: a checkpoint
        raise UsageError(f"{path}: {what}; --backend is for exported models (`translate export`)")
    named = " or ".join(f"--backend {runner.name}" for runner in able if runner.name in choices)
    raise BackendError(f"{path}: {what}, which {get_backend(backend).title} cannot run; use {named}")


def load_translator(
    model: str, direction: str | None = None, device: str = "auto", backend: str = "auto"
) -> Translator:
    """A ready-to-run translator for `translate apply`, on the backend `choose_backend` picks."""
    path = resolve_model(model)
    runner = get_backend(choose_backend(path, backend, device))
    if direction == "b2a" and not is_export(path):
        check_official_direction(path)  # an official checkpoint: name the official model that goes the other way
    return runner.translator(path, direction, device)


def load_sampler(model: str | None = None, device: str = "auto", backend: str = "auto") -> Sampler:
    """A ready-to-run image generator for `translate sample` / `interpolate` (default: the shipped mnist-clusters),
    on the backend `choose_backend` picks."""
    path = resolve_model(model or DEFAULT_SAMPLER)
    return get_backend(choose_backend(path, backend, device)).sampler(path, device)


def check_official_direction(path: Path) -> None:
    """An official release holds one generator per file: name the official model that goes the other way."""
    from translate.core import checkpoint
    from translate.deploy.official import OFFICIAL_MODELS, other_way

    official = (checkpoint.read(path).meta.get("info") or {}).get("official")
    if official in OFFICIAL_MODELS:
        raise ModelError(other_way(official, "b2a"))


def _runners(path: Path) -> tuple[Backend, ...]:
    """The backends that run the file at `path`, in registry order; a file none runs is refused, with what is."""
    able = runners(path)
    if not able:
        *most, last = [f"{noun} ({suffix})" for suffix, noun in model_files().items()]
        raise ModelError(f"{path}: not a model file; give a run folder, {', '.join(most)} or {last}")
    return able
