"""`translate.load`: any model the command line takes, as a `Translator` or a `Generator`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from translate.api.generator import Generator
from translate.api.translator import Translator
from translate.errors import ModelError

if TYPE_CHECKING:
    from translate.deploy.inference import Translator as Runner


def load(
    model: str | Path, *, backend: str = "auto", device: str = "auto", direction: str | None = None
) -> Translator | Generator:
    """Load a trained model, ready to run.

    Args:
        model: a shipped model's name (`translate models` lists them, e.g. "ming2kai", "mnist-cgan"), an official
            CycleGAN/pix2pix name (downloaded and converted once, e.g. "horse2zebra"), a run folder (its newest
            checkpoint), a `.safetensors` checkpoint, an `.onnx` export or an OpenVINO IR `.xml`.
        backend: what runs an export: "onnxruntime", "openvino", or "auto" (OpenVINO on x86 CPUs where it is
            installed, else ONNX Runtime). Checkpoints always run on PyTorch.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        direction: translators: the default direction of calls, "a2b" (the default) or "b2a".

    Returns:
        a `Translator` for image-to-image models, a `Generator` for image generators.

    Examples:
        >>> import translate
        >>> t = translate.load("ming2kai")
        >>> g = translate.load("mnist-cgan.onnx", backend="onnxruntime")

    Raises:
        translate.errors.ModelError: MODEL names nothing (with the closest names), or a file of the wrong kind.
    """
    from translate.deploy.models import kind_of, resolve_model

    path = resolve_model(str(model))
    if kind_of(path) == "generator":
        if direction is not None:
            raise ModelError(f"{path}: an image generator; direction is for translators")
        return load_generator(path, backend=backend, device=device)
    return load_translator(path, backend=backend, device=device, direction=direction)


def load_translator(
    model: str | Path, *, backend: str = "auto", device: str = "auto", direction: str | None = None
) -> Translator:
    """`load` for a model that must be a translator (`translate apply`): a generator is refused by name."""
    from translate.deploy.models import choose_backend, resolve_model
    from translate.deploy.models import load_translator as runner_for

    path = resolve_model(str(model))
    runner = choose_backend(path, backend, device)

    def reload(other: str) -> Runner:
        return runner_for(str(path), other, device, backend)

    translator = runner_for(str(path), direction, device, backend)
    return Translator(translator, runner, reload=reload if runner == "pytorch" else None)


def load_generator(model: str | Path | None = None, *, backend: str = "auto", device: str = "auto") -> Generator:
    """`load` for a model that must be an image generator (`translate sample`, `interpolate`); without MODEL the
    shipped default sampler (mnist-clusters)."""
    from translate.deploy.models import DEFAULT_SAMPLER, choose_backend, load_sampler, resolve_model

    path = resolve_model(str(model or DEFAULT_SAMPLER))
    return Generator(load_sampler(str(path), device, backend), choose_backend(path, backend, device))
