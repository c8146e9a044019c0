"""What every backend is: the `Backend` interface the registry (translate/backends/__init__.py) holds, the
`Translator` and `Sampler` interfaces of what a backend builds, and the checks both exported-model backends share.

Torch-free, and it imports no runtime: the registry, and with it the whole deploy path, loads this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from translate.description import ModelDescription
from translate.errors import ExportedModelError, ModelError

if TYPE_CHECKING:
    from translate.backends import tiles


class Translator(Protocol):
    """An image-to-image generator ready to run, as `translate apply` uses it."""

    channels: int  # image channels in and out (1 or 3)
    stride: int  # H and W must be multiples of this
    direction: str  # a2b or b2a: names the default output folder
    description: str  # e.g. "PyTorch on cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def tiling(self) -> tiles.TileBackend: ...  # the same network for tiled translation (backends/tiles.py)


class Sampler(Protocol):
    """An image generator ready to run, as `translate sample` and `interpolate` use it."""

    model: ModelDescription  # what it is: its named inputs, channels, image size
    description: str  # e.g. "dcgan, step 3000, PyTorch on cpu"

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...

    def embed(self, labels: np.ndarray) -> np.ndarray: ...  # class embeddings (conditional models)

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ExportSpec:
    """A file format that `translate export --format NAME` writes, for the backend that runs it."""

    name: str  # what --format takes
    suffix: str  # of the file written (an IR's .bin is written beside its .xml)
    precisions: tuple[str, ...]  # fp32 first, then the reduced precisions its export can check
    title: str  # the format as messages name it: "ONNX", "OpenVINO IR"


class Backend(ABC):
    """What runs a model file: which files it takes, whether it is installed here, and the translator or sampler it
    builds from one. Implementations import their runtime (torch, onnxruntime, openvino) only inside methods, so
    the registry costs no runtime's import time."""

    name: ClassVar[str]  # its key in the registry, and what `--backend` takes for the exported-model backends
    title: ClassVar[str]  # the runtime as messages name it: "ONNX Runtime"
    files: ClassVar[Mapping[str, str]]  # suffix (lower case) of each file it runs → how messages name such a file
    export: ClassVar[ExportSpec | None] = None  # the format `translate export` writes for it, if any

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The suffixes of the files it runs."""
        return tuple(self.files)

    def runs(self, path: Path) -> bool:
        """Whether it runs the file at `path`, by its suffix."""
        return path.suffix.lower() in self.files

    @abstractmethod
    def available(self) -> bool:
        """Whether its runtime is installed here (checked without importing it where that is possible)."""

    @abstractmethod
    def suits(self, device: str) -> bool:
        """Whether `--backend auto` should run a file on it for `--device device`: the first backend in the
        registry that runs the file and suits the device is picked, else the first that runs the file."""

    @abstractmethod
    def kind_of(self, path: Path) -> str:
        """What the model file at `path` holds: "translator" or "generator", read from its description alone."""

    @abstractmethod
    def translator(self, path: Path, direction: str | None, device: str) -> Translator:
        """The translator in the file at `path`, ready to run on `device`; `direction` None: the one it holds."""

    @abstractmethod
    def sampler(self, path: Path, device: str) -> Sampler:
        """The image generator in the file at `path`, ready to run on `device`."""


# ------------------------------------------------------------------------------- shared by the exported models


def check_translator(model: ModelDescription, path: Path, direction: str | None) -> None:
    """Refuse an image generator, or a translator exported for another direction than `direction`, with the fix."""
    if model.is_generator:
        raise ModelError(f"{path}: an image generator; use it with `translate sample` / `interpolate`")
    if direction is not None and direction != model.direction:
        raise ModelError(
            f"{path}: holds the {model.direction} generator, not {direction}; "
            f"export that one with `translate export MODEL --direction {direction}`"
        )


def check_generator(model: ModelDescription, path: Path) -> None:
    """Refuse an image translator, naming the command that takes it."""
    if not model.is_generator:
        raise ModelError(f"{path}: an image translator; use it with `translate apply`")


def class_input(model: ModelDescription, path: Path, error: type[ExportedModelError]) -> str:
    """The name of the generator's class input; without one, `error` (the backend's own class) says so."""
    label = model.class_input
    if label is None:
        raise error(f"{path}: not a class-conditional generator")
    return label.name


def typed_feeds(feeds: Mapping[str, np.ndarray], model: ModelDescription) -> dict[str, np.ndarray]:
    """Feeds as contiguous arrays of the dtype each declared input has."""
    dtypes = {item.name: item.dtype for item in model.inputs}
    return {name: np.ascontiguousarray(value, dtype=dtypes.get(name)) for name, value in feeds.items()}
