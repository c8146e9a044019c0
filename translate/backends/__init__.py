"""What runs a trained generator: the registry of backends, an explicit dict looked up loudly.

PyTorch runs checkpoints; ONNX Runtime and OpenVINO run exports (`--backend` picks between them, and
`translate export --format` writes each one's format). The deploy path (deploy/models.py, deploy/export.py) asks
this registry which backends run a file, what `--backend` and `--format` take and which files are models, and
never names a backend itself.

Adding a backend is one module plus one line in BACKENDS: the module implements `base.Backend` (its files,
whether it is installed, when `--backend auto` picks it, a file's kind, its translator and sampler, and the
format it exports, if any) and imports its runtime only inside methods, since this registry is loaded on the
torch-free path. tests/test_backends.py is parametrized over the registry and covers the new entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from translate.backends.base import Backend, ExportSpec
from translate.backends.checkpoints import PyTorchBackend
from translate.backends.onnxruntime import OnnxRuntimeBackend
from translate.backends.openvino import OpenVinoBackend
from translate.errors import UsageError

# The order matters: `--backend auto` picks, among the backends that run a file, the first that suits the device,
# else the first (ONNX Runtime before OpenVINO for .onnx files), and choices are listed in this order.
BACKENDS: dict[str, Backend] = {
    "pytorch": PyTorchBackend(),
    "onnxruntime": OnnxRuntimeBackend(),
    "openvino": OpenVinoBackend(),
}


def get_backend(name: str) -> Backend:
    """The backend called `name`; an unknown name fails with the closest matches."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}{_hint(name, BACKENDS)}; available: {', '.join(BACKENDS)}") from None


def backend_choices() -> tuple[str, ...]:
    """What `--backend` takes: "auto", then every backend that runs an exported format, in registry order."""
    exported = {spec.suffix for spec in _exports().values()}
    return ("auto", *(name for name, backend in BACKENDS.items() if exported & set(backend.suffixes)))


def export_formats() -> tuple[str, ...]:
    """What `translate export --format` takes: the formats the backends export, in registry order."""
    return tuple(_exports())


def get_export(file_format: str) -> ExportSpec:
    """The export format called `file_format`; an unknown name fails with the closest matches."""
    exports = _exports()
    try:
        return exports[file_format]
    except KeyError:
        hint = _hint(file_format, exports)
        raise UsageError(f"unknown export format {file_format!r}{hint}; available: {', '.join(exports)}") from None


def runners(path: Path) -> tuple[Backend, ...]:
    """The backends that run the file at `path`, by its suffix, in registry order; empty for any other file."""
    return tuple(backend for backend in BACKENDS.values() if backend.runs(path))


def model_files() -> dict[str, str]:
    """Every suffix of a file some backend runs → how messages name such a file, in registry order."""
    files: dict[str, str] = {}
    for backend in BACKENDS.values():
        for suffix, noun in backend.files.items():
            files.setdefault(suffix, noun)
    return files


def is_export(path: Path) -> bool:
    """Whether the file at `path` is of a format `translate export` writes, rather than a checkpoint."""
    return path.suffix.lower() in {spec.suffix for spec in _exports().values()}


def _exports() -> dict[str, ExportSpec]:
    """--format name → its spec, for every backend that exports a format."""
    return {backend.export.name: backend.export for backend in BACKENDS.values() if backend.export is not None}


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
