"""The OpenVINO backend: parity with ONNX Runtime for every recipe's export, per-shape compilation, tiles, IR
exports (fp32, bf16, int8) with their checks, backend selection and its errors, and the torch-free path (CPU only,
tiny untrained networks). The selection tests run without OpenVINO too; the others skip when it is missing."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from translate.backends import onnxruntime as runtime
from translate.backends import openvino as openvino_runtime
from translate.backends import tiles
from translate.cli import app
from translate.config import apply_overrides, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy import export as export_module
from translate.deploy.inference import MIN_SIDE, run_model
from translate.deploy.models import choose_backend, kind_of, load_sampler, load_translator
from translate.deploy.sampling import random_feeds
from translate.errors import BackendError, DeviceError, ExportError, UsageError
from translate.imageio import to_float
from translate.recipes import RECIPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
TRANSLATORS = [name for name, spec in RECIPES.items() if not spec.is_generator]
GENERATORS = [name for name, spec in RECIPES.items() if spec.is_generator]
CLASSES = ("cat", "dog", "owl")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed (the openvino extra)")


def _cli(*args: str | Path) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args])


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


def _tiny_checkpoint(folder: Path, recipe: str) -> Path:
    """An untrained checkpoint of `recipe` at its tiny preset, in a run folder named after it."""
    spec = RECIPES[recipe]
    overrides = {**spec.presets["tiny"], "data.channels": 1 if spec.is_generator else 3, "train.steps": 1}
    config = apply_overrides(spec.config_class(), overrides)
    if spec.data == "classes":
        config = dataclasses.replace(config, class_names=CLASSES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        modules = spec.build(config, Engine("cpu")).modules()
    path = checkpoint.checkpoint_path(folder / recipe, 1)
    checkpoint.save(path, recipe=recipe, config=to_dict(config), step=1, modules=modules)
    return path


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colour image with gradients and noise, (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / width, ys * 255 / height, (xs + ys) % 256], axis=2)
    return np.clip(base + rng.integers(-40, 41, size=(height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for recipe in RECIPES:
        _tiny_checkpoint(root, recipe)
    return root


@pytest.fixture(scope="module")
def exported(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """recipe → its fp32 ONNX export (translators: a2b)."""
    out = tmp_path_factory.mktemp("onnx")
    files = {}
    for recipe in RECIPES:
        files[recipe] = export_module.export(str(runs / recipe), out / f"{recipe}.onnx", log=lambda line: None).path
    return files


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images of awkward sizes (not multiples of the stride, one tiny, one grayscale) in a small tree."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(50, 37), (64, 64), (23, 41), (9, 12), (64, 64)]):
        folder = root / ("sub" if i % 2 else "")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(root / "gray.png")
    return root


def _same_pictures(a: Path, b: Path) -> int:
    """Largest difference in uint8 levels between the PNG trees `a` and `b`, which must hold the same files."""
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    return max(int(np.abs(_pixels(a / name) - _pixels(b / name)).max()) for name in files)


# --------------------------------------------------------------------------------------------- parity


@needs_openvino
@pytest.mark.parametrize("recipe", TRANSLATORS)
def test_apply_matches_onnx_runtime_within_one_level(
    recipe: str, exported: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    outputs = {}
    for backend in ("onnxruntime", "openvino"):
        outputs[backend] = tmp_path / backend
        result = _cli("apply", photos, "--model", exported[recipe], "--out", outputs[backend], "--backend", backend)
        assert result.exit_code == 0, result.output
    assert f"{recipe} a2b (fp32), OpenVINO " in _flat(result.output) and " on CPU" in result.output
    assert _same_pictures(outputs["onnxruntime"], outputs["openvino"]) <= 1


@needs_openvino
@pytest.mark.parametrize("recipe", TRANSLATORS)
def test_translator_outputs_match_within_the_fp32_tolerance(recipe: str, exported: dict[str, Path]) -> None:
    ours = load_translator(str(exported[recipe]), device="cpu", backend="openvino")
    reference = load_translator(str(exported[recipe]), device="cpu", backend="onnxruntime")
    # f32 arithmetic, asked for explicitly (OpenVINO's default on a CPU with bf16 would be bf16), and unpinned.
    compiled = ours.core.compile_model(ours.graph, "CPU", ours.config)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == openvino_runtime.import_openvino().Type.f32
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    rng = np.random.default_rng(1)
    for shape in ((2, 3, 64, 96), (1, 3, 32, 32)):
        batch = rng.uniform(-1, 1, shape).astype(np.float32)
        assert np.abs(ours(batch) - reference(batch)).max() <= export_module.FP32_TOLERANCE


@needs_openvino
@pytest.mark.parametrize("recipe", GENERATORS)
def test_sample_and_interpolate_match_onnx_runtime(recipe: str, exported: dict[str, Path], tmp_path: Path) -> None:
    commands = [["sample", "--n", "7", "--seed", "3"], ["interpolate", "--points", "3", "--steps", "2"]]
    if RECIPES[recipe].data == "classes":
        commands += [["sample", "--n", "5", "--label", "dog"], ["interpolate", "--labels", "cat,owl", "--steps", "3"]]
    for i, command in enumerate(commands):
        pictures = []
        for backend in ("onnxruntime", "openvino"):
            out = tmp_path / f"{i}_{backend}.png"
            result = _cli(*command, "--model", exported[recipe], "--out", out, "--backend", backend)
            assert result.exit_code == 0, result.output
            pictures.append(_pixels(out))
        assert f"{recipe} (fp32), OpenVINO " in _flat(result.output)
        assert pictures[0].shape == pictures[1].shape and np.abs(pictures[0] - pictures[1]).max() <= 1, command


@needs_openvino
def test_each_input_shape_compiles_once(exported: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    translator = load_translator(str(exported["cyclegan"]), device="cpu", backend="openvino")
    compiles = []
    core = translator.compiled.core

    class Counting:
        def compile_model(self, *args: object) -> object:
            compiles.append(args[0])
            return core.compile_model(*args)

    translator.compiled.core = Counting()
    shapes = [(1, 3, 32, 32), (2, 3, 32, 48), (1, 3, 32, 32), (2, 3, 32, 48), (1, 3, 32, 32)]
    for shape in shapes:
        translator(np.zeros(shape, np.float32))
    assert len(compiles) == 2 and translator.compiled.shapes == [((2, 3, 32, 48),), ((1, 3, 32, 32),)]
    # Within a pixel budget: a shape past it pushes the older ones out, and is itself kept.
    monkeypatch.setattr(openvino_runtime, "CACHE_PIXELS", 2 * 32 * 48)
    translator(np.zeros((1, 3, 64, 48), np.float32))
    assert translator.compiled.shapes == [((1, 3, 64, 48),)]


@needs_openvino
@pytest.mark.parametrize("recipe", TRANSLATORS)
def test_tiles_match_onnx_runtime_tiles(recipe: str, exported: dict[str, Path]) -> None:
    image = _image(330, 470, seed=2)
    outputs, margins = [], []
    for backend in ("onnxruntime", "openvino"):
        translator = load_translator(str(exported[recipe]), device="cpu", backend=backend)
        margins.append(translator.tiling().margin)
        minimum = max(MIN_SIDE, translator.stride)
        outputs.append(
            tiles.translate_tiled(translator.tiling(), image, stride=translator.stride, tile=100, minimum=minimum)
        )
    assert margins[0] == margins[1]
    assert np.abs(outputs[0].astype(np.int16) - outputs[1]).max() <= 1


@needs_openvino
def test_tile_graph_uses_the_statistics_it_is_given(exported: dict[str, Path]) -> None:
    translator = load_translator(str(exported["cyclegan"]), device="cpu", backend="openvino")
    batch = to_float(_image(64, 96)[None])
    backend = translator.tiling()
    stats = backend.statistics(batch)
    assert len(stats) == backend.norms > 0
    np.testing.assert_allclose(backend(batch, stats), translator(batch), atol=2e-5)
    other = backend.statistics(to_float(_image(64, 96, seed=1)[None]))
    assert np.abs(backend(batch, other) - translator(batch)).max() > 1e-3


# --------------------------------------------------------------------------------------------- IR exports


@needs_openvino
@pytest.mark.parametrize("recipe", ["cyclegan", "pix2pix", "cgan"])
def test_ir_export_runs_like_the_onnx_file(
    recipe: str, runs: Path, exported: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    ir = tmp_path / f"{recipe}.xml"
    result = _cli("export", runs / recipe, "--format", "openvino", "--out", ir)
    assert result.exit_code == 0, result.output
    assert "parity fp32, OpenVINO vs PyTorch" in result.output and ir.with_suffix(".bin").is_file()
    assert kind_of(ir) == RECIPES[recipe].kind
    if RECIPES[recipe].is_generator:
        sampler = load_sampler(str(ir), device="cpu")
        reference = load_sampler(str(exported[recipe]), device="cpu", backend="onnxruntime")
        assert sampler.model == reference.model
        feeds = random_feeds(sampler.model, 5, np.random.default_rng(0))
        assert np.abs(sampler(feeds) - reference(feeds)).max() <= export_module.FP32_TOLERANCE
        labels = np.array([0, 2], np.int64)
        assert np.abs(sampler.embed(labels) - reference.embed(labels)).max() <= export_module.FP32_TOLERANCE
        return
    translator = load_translator(str(ir), device="cpu")  # auto: an IR is OpenVINO's
    assert translator.model == load_translator(str(exported[recipe]), backend="onnxruntime").model
    for backend, model in (("onnxruntime", exported[recipe]), ("auto", ir)):
        assert _cli("apply", photos, "--model", model, "--out", tmp_path / backend, "--backend", backend).exit_code == 0
    assert _same_pictures(tmp_path / "onnxruntime", tmp_path / "auto") <= 1
    image = _image(200, 260, seed=3)  # an IR tiles too
    tiled = tiles.translate_tiled(translator.tiling(), image, stride=translator.stride, tile=100, minimum=MIN_SIDE)
    whole = run_model(translator, image[None])[0]
    assert np.abs(tiled.astype(np.int16) - whole).max() <= 1


@needs_openvino
def test_int8_ir_is_checked_against_fp32_and_refused_below_the_limit(
    runs: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ir = tmp_path / "int8.xml"
    result = _cli("export", runs / "cyclegan", "--format", "openvino", "--int8", "--calibrate", photos, "--out", ir)
    assert result.exit_code == 0, result.output
    assert "parity int8 vs fp32 on 6 images: PSNR" in _flat(result.output) and "(limit 0.95)" in result.output
    translator = load_translator(str(ir), device="cpu")
    assert translator.model.precision == "int8" and "(int8), OpenVINO" in translator.description
    assert _cli("apply", photos, "--model", ir, "--out", tmp_path / "out").exit_code == 0

    monkeypatch.setitem(export_module.MIN_SSIM, "int8", 1.01)  # no int8 model reaches it
    refused = tmp_path / "refused.xml"
    with pytest.raises(ExportError, match="SSIM below the limit; nothing was written"):
        export_module.export(
            str(runs / "cyclegan"), refused, precision="int8", calibrate=photos, file_format="openvino", log=print
        )
    assert not refused.exists() and not refused.with_suffix(".bin").exists()


@needs_openvino
def test_bf16_ir_only_where_the_cpu_computes_bf16(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ir = tmp_path / "bf16.xml"
    result = _cli("export", runs / "cyclegan", "--format", "openvino", "--bf16", "--out", ir)
    if openvino_runtime.has_bf16(openvino_runtime.import_openvino().Core()):
        assert result.exit_code == 0, result.output
        assert "parity bf16 vs fp32" in result.output and "(limit 0.99)" in result.output
        assert "(bf16), OpenVINO" in load_translator(str(ir), device="cpu").description
        # The same file on a CPU without bf16 runs in fp32, and says so.
        monkeypatch.setattr(openvino_runtime, "has_bf16", lambda core: False)
        assert "bf16 export run in fp32" in load_translator(str(ir), device="cpu").description
    else:
        assert result.exit_code == 1 and "this CPU has no bf16 arithmetic" in _flat(result.output)
        assert not ir.exists()


@needs_openvino
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "openvino", "--fp16"], "--fp16 is for --format onnx; --format openvino takes fp32, --bf16 or"),
        (["--bf16"], "--bf16 is for --format openvino"),
        (["--format", "openvino", "--out", "m.onnx"], "the file name must end in .xml"),
        (["--bf16", "--int8"], "--bf16 and --int8 exclude each other"),
    ],
)
def test_export_format_and_precision_errors(runs: Path, args: list[str], message: str) -> None:
    result = _cli("export", runs / "cyclegan", *args)
    assert result.exit_code == 2 and message in _flat(result.output), result.output


# --------------------------------------------------------------------------------------------- selection


def test_auto_picks_openvino_on_x86_cpus_when_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    monkeypatch.setattr(runtime, "cuda_devices", lambda: 0)
    monkeypatch.setattr(openvino_runtime, "openvino_installed", lambda: True)
    monkeypatch.setattr(openvino_runtime, "is_x86", lambda: True)
    assert choose_backend(model, "auto", "auto") == choose_backend(model, "auto", "cpu") == "openvino"
    assert choose_backend(model, "auto", "cuda") == "onnxruntime"  # a GPU asked for
    assert choose_backend(model, "onnxruntime", "cpu") == "onnxruntime"
    monkeypatch.setattr(runtime, "cuda_devices", lambda: 1)
    assert choose_backend(model, "auto", "auto") == "onnxruntime"  # a GPU present: ONNX Runtime's CUDA
    assert choose_backend(model, "auto", "cpu") == "openvino"
    monkeypatch.setattr(openvino_runtime, "is_x86", lambda: False)
    assert choose_backend(model, "auto", "cpu") == "onnxruntime"
    assert choose_backend(model, "openvino", "cpu") == "openvino"  # asked for by name, it is tried anywhere
    assert choose_backend(tmp_path / "m.xml", "auto", "cuda") == "openvino"  # an IR is OpenVINO's alone


def test_selection_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--backend tensorrt: use one of auto, onnxruntime, openvino"):
        choose_backend(tmp_path / "m.onnx", "tensorrt", "cpu")
    with pytest.raises(BackendError, match="an OpenVINO IR, which ONNX Runtime cannot run; use --backend openvino"):
        choose_backend(tmp_path / "m.xml", "onnxruntime", "cpu")
    with pytest.raises(UsageError, match="a PyTorch checkpoint; --backend is for exported models"):
        choose_backend(tmp_path / "m.safetensors", "openvino", "cpu")
    assert choose_backend(tmp_path / "m.safetensors", "auto", "cpu") == "pytorch"
    for device, message in (
        ("cuda", "--device cuda: the OpenVINO backend runs on the CPU; use --backend onnxruntime"),
        ("cuda:1", "--device cuda:1: the OpenVINO backend runs on the CPU"),
        ("mps", "--device mps: the OpenVINO backend runs on the CPU"),
        ("tpu", "unknown device 'tpu': the OpenVINO backend takes auto or cpu"),
    ):
        with pytest.raises(DeviceError, match=message):
            openvino_runtime.check_device(device)


def test_missing_openvino_falls_back_or_says_how_to_install(
    runs: Path, exported: dict[str, Path], photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # any `import openvino` now raises ImportError
    monkeypatch.setattr(runtime, "cuda_devices", lambda: 0)
    assert not openvino_runtime.openvino_installed()
    assert choose_backend(exported["cyclegan"], "auto", "cpu") == "onnxruntime"
    result = _cli("apply", photos, "--model", exported["cyclegan"], "--out", tmp_path / "auto")
    assert result.exit_code == 0 and "ONNX Runtime on CPU" in result.output, result.output
    for command in (
        ["apply", photos, "--model", exported["cyclegan"], "--out", tmp_path / "ov"],
        ["sample", "--model", exported["dcgan"], "--out", tmp_path / "s.png"],
    ):
        result = _cli(*command, "--backend", "openvino")
        assert result.exit_code == 2, result.output
        assert _flat(result.output) == (
            'error: --backend openvino: OpenVINO is not installed; pip install "gan-translate[openvino]", or use '
            "--backend onnxruntime"
        )
    with pytest.raises(BackendError, match="OpenVINO is not installed"):
        export_module.export(str(runs / "cyclegan"), tmp_path / "m.xml", file_format="openvino")


@needs_openvino
def test_wrong_kind_and_device_are_one_line_errors(exported: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    cases = [
        (["apply", photos, "--model", exported["dcgan"], "--backend", "openvino"], "image generator"),
        (["sample", "--model", exported["cyclegan"], "--backend", "openvino"], "image translator"),
        (["apply", photos, "-m", exported["cyclegan"], "--backend", "openvino", "--device", "cuda"], "runs on the CPU"),
        (["apply", photos, "-m", exported["cyclegan"], "--backend", "openvino", "--direction", "b2a"], "not b2a"),
    ]
    for args, message in cases:
        result = _cli(*args, "--out", tmp_path / "x")
        assert result.exit_code == 2 and message in _flat(result.output), (args, result.output)
        assert len(result.output.strip().splitlines()) == 1


@needs_openvino
def test_foreign_and_broken_files_are_refused(tmp_path: Path, photos: Path) -> None:
    import onnx

    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Identity", ["image"], ["output"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [value("image", 1, None)], [value("output", 1, None)])
    onnx.save(onnx.helper.make_model(graph, ir_version=10, opset_imports=[onnx.helper.make_opsetid("", 18)]), foreign)
    broken = tmp_path / "broken.xml"
    broken.write_text("<net>")
    for model, message in ((foreign, "without translate metadata"), (broken, "OpenVINO cannot load it")):
        result = _cli("apply", photos, "--model", model, "--backend", "openvino", "--out", tmp_path / "out")
        assert result.exit_code == 1 and message in _flat(result.output), result.output


# --------------------------------------------------------------------------------------------- no torch


@needs_openvino
def test_openvino_path_runs_without_torch(runs: Path, exported: dict[str, Path], photos: Path, tmp_path: Path) -> None:
    """apply (whole and tiled), sample and interpolate on .onnx and IR files, with torch made unimportable."""
    ir = tmp_path / "cgan.xml"
    assert _cli("export", runs / "cgan", "--format", "openvino", "--out", ir).exit_code == 0
    Image.fromarray(_image(200, 300, seed=6)).save(tmp_path / "photo.png")
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from translate.cli import app
from typer.testing import CliRunner
runner = CliRunner()
for args in (
    ["apply", {str(photos)!r}, "--model", {str(exported["cyclegan"])!r}, "--out", {str(tmp_path / "out")!r}],
    ["apply", {str(tmp_path / "photo.png")!r}, "--model", {str(exported["cyclegan"])!r}, "--tile", "150",
     "--out", {str(tmp_path / "tiled.png")!r}],
    ["sample", "--model", {str(ir)!r}, "--n", "4", "--out", {str(tmp_path / "s.png")!r}],
    ["interpolate", "--model", {str(exported["cgan"])!r}, "--labels", "cat,dog", "--steps", "2",
     "--out", {str(tmp_path / "w.gif")!r}],
):
    result = runner.invoke(app, [*args, "--backend", "openvino"])
    assert result.exit_code == 0, (args, result.output)
    assert "OpenVINO" in result.output, result.output
assert "torch" not in sys.modules or sys.modules["torch"] is None
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout + done.stderr
    assert len(list((tmp_path / "out").rglob("*.png"))) == 6
    assert (tmp_path / "tiled.png").is_file() and (tmp_path / "s.png").is_file() and (tmp_path / "w.gif").is_file()
