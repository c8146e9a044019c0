"""The backend registry, every entry alike: its files, whether it is installed, what `--backend auto` and a named
backend choose for its files, and a translator and a sampler built from tiny untrained models that compute what
PyTorch computes (CPU only). A new backend in translate/backends/__init__.py is covered by these tests as it is."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from translate.backends import (
    BACKENDS,
    backend_choices,
    export_formats,
    get_backend,
    get_export,
    is_export,
    model_files,
    runners,
)
from translate.backends.base import Backend
from translate.config import apply_overrides, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy.export import FP32_TOLERANCE, export
from translate.deploy.models import choose_backend, kind_of
from translate.deploy.sampling import random_feeds
from translate.errors import (
    BackendError,
    ExportedModelError,
    ModelError,
    OnnxModelError,
    OpenVinoModelError,
    TranslateError,
    UsageError,
)
from translate.recipes import RECIPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# One small model of each kind: what every backend's translator and sampler are built from.
TRANSLATOR, GENERATOR = "cyclegan", "dcgan"
# Each backend's runtime package: made unimportable, the backend must say it is not available.
RUNTIMES = {"pytorch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
FILES = [(name, suffix) for name, backend in BACKENDS.items() for suffix in backend.suffixes]
EXPORTED = [(name, suffix) for name, suffix in FILES if is_export(Path(f"model{suffix}"))]


def _tiny_checkpoint(folder: Path, recipe: str) -> Path:
    """An untrained checkpoint of `recipe` at its tiny preset (16-32 px), in a run folder named after it."""
    spec = RECIPES[recipe]
    overrides = {**spec.presets["tiny"], "data.channels": 1 if spec.is_generator else 3, "train.steps": 1}
    config = apply_overrides(spec.config_class(), overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        modules = spec.build(config, Engine("cpu")).modules()
    path = checkpoint.checkpoint_path(folder / recipe, 1)
    checkpoint.save(path, recipe=recipe, config=to_dict(config), step=1, modules=modules)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(recipe, suffix) → the tiny model as a checkpoint and in every export format whose backend is installed."""
    root = tmp_path_factory.mktemp("backends")
    files = {}
    for recipe in (TRANSLATOR, GENERATOR):
        files[recipe, ".safetensors"] = _tiny_checkpoint(root, recipe)
        for owner in BACKENDS.values():
            if owner.export is None or not owner.available():  # an export is checked on its own backend
                continue
            out = root / f"{recipe}{owner.export.suffix}"
            made = export(str(root / recipe), out, file_format=owner.export.name, log=lambda line: None)
            files[recipe, owner.export.suffix] = made.path
    return files


def _model(models: dict[tuple[str, str], Path], recipe: str, backend: Backend, suffix: str) -> Path:
    if not backend.available():
        pytest.skip(f"{backend.title} is not installed")
    return models[recipe, suffix]


# --------------------------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_entry_describes_itself(name: str) -> None:
    backend = BACKENDS[name]
    assert get_backend(name) is backend and backend.name == name and backend.title
    assert backend.suffixes and all(s.startswith(".") and s == s.lower() for s in backend.suffixes)
    assert all(model_files()[suffix] for suffix in backend.suffixes)
    if backend.export is not None:
        assert backend.export.suffix in backend.suffixes and backend.export.precisions[0] == "fp32"
        assert get_export(backend.export.name) is backend.export
    assert isinstance(backend.available(), bool)


def test_choices_and_formats_in_a_stable_order() -> None:
    assert backend_choices() == ("auto", "onnxruntime", "openvino")
    assert export_formats() == ("onnx", "openvino")
    assert [get_export(name).suffix for name in export_formats()] == [".onnx", ".xml"]
    # What `--backend` takes: the backends that run an export format; checkpoints' backend is chosen, never named.
    for name, backend in BACKENDS.items():
        assert (name in backend_choices()) == any(is_export(Path(f"m{suffix}")) for suffix in backend.suffixes)


def test_unknown_names_fail_with_the_closest() -> None:
    with pytest.raises(UsageError, match=r"unknown backend 'onnxrt' \(did you mean onnxruntime\?\); available: "):
        get_backend("onnxrt")
    with pytest.raises(UsageError, match=r"unknown export format 'onx' \(did you mean onnx\?\)"):
        get_export("onx")
    with pytest.raises(UsageError, match=r"--backend openvion: use one of auto, onnxruntime, openvino \(did you"):
        choose_backend(Path("m.onnx"), "openvion", "cpu")
    with pytest.raises(ModelError, match=r"not a model file; give a run folder, a PyTorch checkpoint \(.safetensors"):
        choose_backend(Path("m.pt"), "auto", "cpu")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_missing_runtime_is_not_available(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, RUNTIMES[name], None)  # any import of it now raises ImportError
    assert not BACKENDS[name].available()


@pytest.mark.parametrize(("name", "suffix"), FILES)
def test_choose_backend_for_its_files(name: str, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"model{suffix}"
    assert BACKENDS[name] in runners(path)
    for device in ("cpu", "cuda", "auto"):
        assert get_backend(choose_backend(path, "auto", device)) in runners(path)
    if name in backend_choices():
        assert choose_backend(path, name, "cpu") == name
        for other in sorted(set(backend_choices()) - {"auto", *(backend.name for backend in runners(path))}):
            with pytest.raises(BackendError, match=f"cannot run; use --backend {name}"):
                choose_backend(path, other, "cpu")
    else:  # a checkpoint: its backend is the only one, and `--backend` is refused for it
        assert runners(path) == (BACKENDS[name],) and choose_backend(path, "auto", "cuda") == name
        for other in backend_choices()[1:]:
            with pytest.raises(UsageError, match="--backend is for exported models"):
                choose_backend(path, other, "cpu")


# --------------------------------------------------------------------------------------------- what they build


@pytest.mark.parametrize(("name", "suffix"), FILES)
def test_translator_computes_what_pytorch_computes(name: str, suffix: str, models: dict[tuple[str, str], Path]) -> None:
    backend = BACKENDS[name]
    path = _model(models, TRANSLATOR, backend, suffix)
    assert backend.kind_of(path) == kind_of(path) == "translator"
    ours = backend.translator(path, None, "cpu")
    reference = get_backend("pytorch").translator(models[TRANSLATOR, ".safetensors"], "a2b", "cpu")
    assert (ours.direction, ours.channels, ours.stride) == (reference.direction, reference.channels, reference.stride)
    assert backend.title in ours.description
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 3, 32, 48)).astype(np.float32)
    assert np.abs(ours(batch) - reference(batch)).max() <= FP32_TOLERANCE
    assert ours.tiling().margin == reference.tiling().margin  # the tiling hook, on the translator as ever


@pytest.mark.parametrize(("name", "suffix"), FILES)
def test_sampler_computes_what_pytorch_computes(name: str, suffix: str, models: dict[tuple[str, str], Path]) -> None:
    backend = BACKENDS[name]
    path = _model(models, GENERATOR, backend, suffix)
    assert backend.kind_of(path) == kind_of(path) == "generator"
    ours = backend.sampler(path, "cpu")
    reference = get_backend("pytorch").sampler(models[GENERATOR, ".safetensors"], "cpu")
    assert ours.model.inputs == reference.model.inputs
    feeds = random_feeds(ours.model, 3, np.random.default_rng(2))
    assert np.abs(ours(feeds) - reference(feeds)).max() <= FP32_TOLERANCE


@pytest.mark.parametrize(("name", "suffix"), FILES)
def test_the_wrong_kind_is_refused_with_the_command_to_use(
    name: str, suffix: str, models: dict[tuple[str, str], Path]
) -> None:
    backend = BACKENDS[name]
    with pytest.raises(ModelError, match="an image generator"):
        backend.translator(_model(models, GENERATOR, backend, suffix), None, "cpu")
    with pytest.raises(ModelError, match=r"translator; use .*`translate apply`"):
        backend.sampler(models[TRANSLATOR, suffix], "cpu")


@pytest.mark.parametrize(("name", "suffix"), FILES)
def test_a_broken_file_is_a_failed_run_naming_it(name: str, suffix: str, tmp_path: Path) -> None:
    backend = BACKENDS[name]
    if not backend.available():
        pytest.skip(f"{backend.title} is not installed")
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(b"not a model")
    with pytest.raises(TranslateError, match=re.escape(str(broken))) as refused:
        backend.translator(broken, None, "cpu")
    assert refused.value.exit_code == 1
    if is_export(broken):  # each exported-model backend says which runtime refused it
        assert isinstance(refused.value, ExportedModelError)
        assert isinstance(refused.value, OpenVinoModelError if name == "openvino" else OnnxModelError)


@pytest.mark.parametrize(("name", "suffix"), EXPORTED)
def test_an_unconditional_generator_has_no_class_walk(
    name: str, suffix: str, models: dict[tuple[str, str], Path]
) -> None:
    backend = BACKENDS[name]
    sampler = backend.sampler(_model(models, GENERATOR, backend, suffix), "cpu")
    error = OpenVinoModelError if name == "openvino" else OnnxModelError
    with pytest.raises(error, match="not a class-conditional generator"):
        sampler.embed(np.zeros(2, np.int64))
