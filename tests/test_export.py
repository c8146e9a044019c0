"""ONNX export and the ONNX Runtime backend: parity with PyTorch for every recipe, metadata, reduced precision,
the torch-free deploy path and clean errors (CPU only, tiny untrained networks)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from translate.backends.onnxruntime import create_session, cuda_devices, physical_cores
from translate.cli import app
from translate.config import apply_overrides, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy.sampling import random_feeds
from translate.recipes import RECIPES
from translate.recipes.restore import load_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
TRANSLATORS = [name for name, spec in RECIPES.items() if not spec.is_generator]
GENERATORS = [name for name, spec in RECIPES.items() if spec.is_generator]
CLASSES = ("cat", "dog", "owl")  # for recipes trained on class folders


def _tiny_checkpoint(folder: Path, recipe: str, seed: int = 0) -> Path:
    """An untrained checkpoint of `recipe` at its tiny preset, in a run folder named after it."""
    spec = RECIPES[recipe]
    overrides: dict[str, object] = {
        **spec.presets["tiny"],
        "data.channels": 1 if spec.is_generator else 3,
        "train.seed": seed,
        "train.steps": 1,
    }
    config = apply_overrides(spec.config_class(), overrides)
    if spec.data == "classes":
        config = dataclasses.replace(config, class_names=CLASSES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules = spec.build(config, Engine("cpu")).modules()
    path = checkpoint.checkpoint_path(folder / recipe, 1)
    checkpoint.save(path, recipe=recipe, config=to_dict(config), step=1, modules=modules)
    return path


def _cli(*args: str | Path) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args])


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


def _metadata(path: Path) -> dict[str, str]:
    return {entry.key: entry.value for entry in onnx.load(path).metadata_props}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for recipe in RECIPES:
        _tiny_checkpoint(root, recipe)
    return root


@pytest.fixture(scope="module")
def exported(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """recipe → its fp32 export (translators: a2b), made through the CLI."""
    out = tmp_path_factory.mktemp("onnx")
    files = {}
    for recipe in RECIPES:
        files[recipe] = out / f"{recipe}.onnx"
        result = _cli("export", runs / recipe, "--out", files[recipe])
        assert result.exit_code == 0, result.output
        assert "parity fp32" in result.output
    return files


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images of awkward sizes (not multiples of the stride, one tiny, one grayscale) in a small tree."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    sizes = [(50, 37), (64, 64), (23, 41), (9, 12)]
    for i, (w, h) in enumerate(sizes):
        folder = root / ("sub" if i % 2 else "")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(root / "gray.png")
    return root


# ----------------------------------------------------------------------------------------------- export


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_exports_with_metadata_and_dynamic_shapes(
    recipe: str, runs: Path, exported: dict[str, Path]
) -> None:
    source = checkpoint.latest_checkpoint(runs / recipe)
    meta = _metadata(exported[recipe])
    model = onnx.load(exported[recipe])
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert meta["recipe"] == recipe and meta["opset"] == str(opset) and meta["value_range"] == "-1,1"
    assert meta["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    trained_at = checkpoint.read(source).meta["config"]["data"]["image_size"]  # tiny presets: 16 or 32 px
    assert meta["image_size"] == str(trained_at) and meta["precision"] == "fp32"
    assert not list(exported[recipe].parent.glob("*.data"))  # weights inside the file, not beside it
    assert not any(node.metadata_props for node in model.graph.node)  # no exporter stack traces (source paths)

    session, where = create_session(exported[recipe], "cpu")
    assert where == "CPU"
    spec = RECIPES[recipe]
    generator = spec.is_generator
    module, description = load_generator(source, spec.default_direction)
    rng = np.random.default_rng(5)
    with torch.inference_mode():
        if generator:
            assert meta["kind"] == "generator"
            inputs = {item["name"]: item for item in json.loads(meta["inputs"])}
            assert inputs["z"]["kind"] == "normal" and inputs["z"]["shape"] == [8]
            z = rng.standard_normal((7, 8), dtype=np.float32)  # a batch size the export never saw
            feeds: dict[str, np.ndarray] = {"z": z}
            if spec.data == "classes":
                assert inputs["label"]["classes"] == list(CLASSES) and inputs["label"]["kind"] == "class"
                feeds["label"] = np.array([0, 1, 2, 2, 1, 0, 1], dtype=np.int64)
            feeds = random_feeds(description, 7, rng) | feeds  # any other input (InfoGAN's codes) from its prior
            assert [i.name for i in session.get_inputs()] == list(inputs)
            expected = module(**{name: torch.from_numpy(value) for name, value in feeds.items()}).numpy()
            got = session.run(None, feeds)[0]
        else:
            assert meta["kind"] == "translator" and meta["direction"] == "a2b"
            assert meta["stride"] == str(module.stride) and meta["channels"] == "3"
            # Another shape the export never saw: 5 × 11 strides.
            image = rng.uniform(-1, 1, (1, 3, 5 * module.stride, 11 * module.stride)).astype(np.float32)
            expected = module(torch.from_numpy(image)).numpy()
            got = session.run(None, {"image": image})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def test_failed_parity_check_writes_nothing(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("translate.deploy.export.FP32_TOLERANCE", 0.0)
    out = tmp_path / "g.onnx"
    result = _cli("export", runs / "cyclegan", "--out", out)
    assert result.exit_code == 1
    assert "above the limit" in _flat(result.output) and "nothing was written" in _flat(result.output)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_b2a_export_names_and_direction_checks(
    runs: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _cli("export", runs / "cyclegan", "--direction", "b2a")
    assert result.exit_code == 0, result.output
    moved = tmp_path / "cyclegan_b2a.onnx"  # named after the run folder and direction, in the current folder
    assert _metadata(moved)["direction"] == "b2a"
    wrong = _cli("apply", photos, "--model", moved, "--direction", "a2b", "--out", tmp_path / "x")
    assert wrong.exit_code == 2 and "holds the b2a generator" in _flat(wrong.output)
    # Without --direction, the file's own direction names the default output folder.
    single = tmp_path / "one" / "p.png"
    single.parent.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(single)
    ok = _cli("apply", single, "--model", moved)
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "one" / "p_b2a.png").is_file()


def test_export_refuses_bad_requests(runs: Path, exported: dict[str, Path], tmp_path: Path) -> None:
    existing = exported["cyclegan"]
    cases = {
        ("export", runs / "cyclegan", "--out", existing): "already exists",
        ("export", runs / "cyclegan", "--fp16", "--int8"): "exclude each other",
        ("export", runs / "cyclegan", "--int8"): "--int8 needs --calibrate",
        ("export", runs / "dcgan", "--int8", "--calibrate", tmp_path): "generators calibrate",
        ("export", existing): "export; this needs the .safetensors checkpoint",
        ("export", runs / "cyclegan", "--out", tmp_path / "x.pt"): "must end in .onnx",
        ("export", runs / "cyclegan", "--direction", "sideways"): "sideways",
        ("export", runs / "cyclegan", "--int8", "--calibrate", tmp_path / "none"): "no such",
    }
    for args, expected in cases.items():
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output)  # each is a usage error
        errors = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.output
        assert expected in _flat(result.output), (args, result.output)


def test_overwrite_replaces_an_export(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.onnx"
    out.write_bytes(b"old")
    result = _cli("export", runs / "dcgan", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert _metadata(out)["recipe"] == "dcgan"
    assert oct(out.stat().st_mode & 0o044) == oct(0o044)  # readable by others, like any file written normally


# ---------------------------------------------------------------------------------------- reduced precision


def test_fp16_export_keeps_float32_io_and_reports_quality(
    runs: Path, exported: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "g16.onnx"
    result = _cli("export", runs / "cyclegan", "--fp16", "--out", out)
    assert result.exit_code == 0, result.output
    assert "parity fp16 vs fp32" in result.output and "SSIM" in result.output
    model = onnx.load(out)
    assert _metadata(out)["precision"] == "fp16"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    image = np.random.default_rng(1).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    half = create_session(out, "cpu")[0].run(None, {"image": image})[0]
    full = create_session(exported["cyclegan"], "cpu")[0].run(None, {"image": image})[0]
    assert half.dtype == np.float32 and np.abs(half - full).max() < 0.02


def test_int8_export_calibrates_on_images_and_applies(runs: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "g8.onnx"
    result = _cli("export", runs / "cyclegan", "--int8", "--calibrate", photos, "--out", out)
    assert result.exit_code == 0, result.output
    assert "parity int8 vs fp32" in result.output
    model = onnx.load(out)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    assert _metadata(out)["precision"] == "int8"
    applied = _cli("apply", photos, "--model", out, "--out", tmp_path / "int8_out")
    assert applied.exit_code == 0, applied.output
    assert "(int8)" in _flat(applied.output)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_generators_sample_and_walk_between_classes(
    precision: str, runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"cgan_{precision}.onnx"
    result = _cli("export", runs / "cgan", f"--{precision}", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"parity {precision} vs fp32 on 32 latents" in _flat(result.output)
    reference, ours = tmp_path / "torch.png", tmp_path / "onnx.png"
    for model, target in ((runs / "cgan", reference), (out, ours)):
        walked = _cli("interpolate", "--model", model, "--labels", "owl,cat", "--steps", "3", "--out", target)
        assert walked.exit_code == 0, walked.output
    # The class walk cuts the reduced-precision graph at its embedding and still follows PyTorch's.
    assert np.abs(_pixels(reference) - _pixels(ours)).mean() < (2 if precision == "fp16" else 12)
    sampled = _cli("sample", "--model", out, "--n", "6", "--out", tmp_path / "s.png")
    assert sampled.exit_code == 0, sampled.output


# ----------------------------------------------------------------------------------- ONNX Runtime backend


def test_apply_through_onnx_matches_pytorch(
    runs: Path, exported: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    torch_out, onnx_out = tmp_path / "torch", tmp_path / "onnx"
    a = _cli("apply", photos, "--model", runs / "cyclegan", "--out", torch_out, "--device", "cpu")
    on_onnx_runtime = ("--device", "cpu", "--backend", "onnxruntime")
    b = _cli("apply", photos, "--model", exported["cyclegan"], "--out", onnx_out, *on_onnx_runtime)
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    assert "ONNX Runtime on CPU" in _flat(b.output)
    files = sorted(p.relative_to(torch_out) for p in torch_out.rglob("*.png"))
    assert files == sorted(p.relative_to(onnx_out) for p in onnx_out.rglob("*.png")) and len(files) == 5
    for name in files:
        x, y = _pixels(torch_out / name), _pixels(onnx_out / name)
        assert x.shape == y.shape
        assert np.abs(x - y).max() <= 1, name  # within 1/255 per pixel


@pytest.mark.parametrize("name", ["mnist-dcgan", "mnist-cgan"])
def test_shipped_onnx_samples_and_walks_match_pytorch(name: str, tmp_path: Path) -> None:
    commands = [
        ["sample", "--n", "12", "--seed", "3"],
        ["interpolate", "--points", "3", "--steps", "4"],
    ]
    if name == "mnist-cgan":
        commands += [["sample", "--n", "5", "--label", "7"], ["interpolate", "--labels", "3,8,1", "--steps", "4"]]
    for i, command in enumerate(commands):
        outputs = []
        for model in (name, f"{name}.onnx"):
            out = tmp_path / f"{i}_{model}.png"
            result = _cli(*command, "--model", model, "--out", out, "--device", "cpu")
            assert result.exit_code == 0, result.output
            outputs.append(_pixels(out))
        assert outputs[0].shape == outputs[1].shape
        assert np.abs(outputs[0] - outputs[1]).max() <= 1, command


def test_onnx_path_runs_without_torch(exported: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    """apply, sample and interpolate on .onnx files with torch made unimportable, on ONNX Runtime (the OpenVINO
    backend's torch-free run is in test_openvino.py)."""
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from translate.cli import app
from typer.testing import CliRunner
runner = CliRunner()
for args in (
    ["apply", {str(photos)!r}, "--model", {str(exported["cyclegan"])!r}, "--out", {str(tmp_path / "out")!r}],
    ["sample", "--model", "mnist-cgan.onnx", "--n", "4", "--out", {str(tmp_path / "s.png")!r}],
    ["interpolate", "--model", "mnist-cgan.onnx", "--labels", "1,2", "--steps", "2",
     "--out", {str(tmp_path / "w.gif")!r}],
    ["sample", "--model", {str(exported["wgan-gp"])!r}, "--n", "3", "--out", {str(tmp_path / "w.png")!r}],
    ["sample", "--model", {str(exported["progan"])!r}, "--n", "3", "--out", {str(tmp_path / "p.png")!r}],
    ["interpolate", "--model", {str(exported["lapgan"])!r}, "--points", "2", "--steps", "2",
     "--out", {str(tmp_path / "l.gif")!r}],
):
    result = runner.invoke(app, [*args, "--backend", "onnxruntime"])
    assert result.exit_code == 0, (args, result.output)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout + done.stderr
    assert len(list((tmp_path / "out").rglob("*.png"))) == 5
    for name in ("s.png", "w.gif", "w.png", "p.png", "l.gif"):
        assert (tmp_path / name).is_file(), name


def test_onnx_models_refuse_the_wrong_command_and_foreign_files(
    exported: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Identity", ["image"], ["output"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [value("image", 1, None)], [value("output", 1, None)])
    onnx.save(onnx.helper.make_model(graph, ir_version=10, opset_imports=[onnx.helper.make_opsetid("", 18)]), foreign)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    # Files that cannot be used fail the run (1); asking a model for what it is not is a usage error (2).
    cases = [
        (["apply", photos, "--model", foreign], "without translate metadata", 1),
        (["apply", photos, "--model", broken], "cannot load it", 1),
        (["apply", photos, "--model", exported["dcgan"]], "image generator; use it with `translate sample`", 2),
        (["sample", "--model", exported["cyclegan"]], "image translator; use it with `translate apply`", 2),
        (["sample", "--model", exported["dcgan"], "--device", "mps"], "no MPS provider", 2),
    ]
    if cuda_devices() == 0:
        cases.append((["sample", "--model", exported["dcgan"], "--device", "cuda"], "--device cuda", 2))
    for args, expected, code in cases:
        result = _cli(*args, "--out", tmp_path / "never")
        assert result.exit_code == code, (args, result.output)
        assert expected in _flat(result.output) and "Traceback" not in result.output, (args, result.output)
    assert not (tmp_path / "never").exists()


def test_physical_cores_is_at_least_one() -> None:
    assert 1 <= physical_cores() <= (len(__import__("os").sched_getaffinity(0)) if sys.platform == "linux" else 4096)
