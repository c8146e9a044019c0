"""The Python API gives what the command line gives: the same pixels for the same arguments, typed results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import translate
from translate.cli import app
from translate.errors import ApplyError, ModelError, SamplingError

REPO = Path(__file__).resolve().parent.parent
GLYPHS = sorted((REPO / "samples" / "ming").glob("*.png"))


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_import_translate_imports_no_torch_and_names_resolve_lazily() -> None:
    code = (
        "import sys, translate\n"
        "assert 'torch' not in sys.modules, 'import translate imported torch'\n"
        "from translate import load, Translator, Generator, train, Run, export, evaluate\n"
        "assert 'torch' not in sys.modules, 'the API names imported torch'\n"
        "assert translate.load is load and callable(translate.train)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        translate.nonsense  # noqa: B018
    assert {"load", "Translator", "Generator", "train", "evaluate", "export"} <= set(dir(translate))


def test_shipped_translator_on_a_pil_image_matches_apply(tmp_path: Path) -> None:
    source = GLYPHS[0]
    _cli("apply", str(source), "--model", "ming2kai", "--out", str(tmp_path / "out.png"))
    t = translate.load("ming2kai")
    assert isinstance(t, translate.Translator)
    assert t.backend == "pytorch" and t.direction == "a2b" and t.description.recipe == "pix2pix"
    with Image.open(source) as image:
        out = t(image)
    assert isinstance(out, Image.Image) and out.size == Image.open(source).size
    np.testing.assert_array_equal(np.asarray(out), _pixels(tmp_path / "out.png"))
    # a path gives a PIL image; an array gives an array of the model's channels; a batch gives a batch
    np.testing.assert_array_equal(np.asarray(t(source)), np.asarray(out))
    array = np.asarray(Image.open(source).convert("RGB"))
    single = t(array)
    assert isinstance(single, np.ndarray) and single.shape == (*array.shape[:2], t.channels)
    np.testing.assert_array_equal(single.reshape(np.asarray(out).shape), np.asarray(out))
    batch = t(np.stack([array, array]))
    assert batch.shape == (2, *single.shape)
    np.testing.assert_array_equal(batch[1], single)


def test_translator_size_tile_and_alpha_follow_apply(tmp_path: Path) -> None:
    rgba = Image.open(GLYPHS[1]).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))  # transparent at the top: flattened on white
    source = tmp_path / "in" / "glyph.png"
    source.parent.mkdir()
    rgba.save(source)
    _cli("apply", str(source), "--model", "ming2kai", "--out", str(tmp_path / "o.png"), "--size", "48", "--tile", "32")
    t = translate.load("ming2kai")
    out = t(rgba, size=48, tile=32)
    assert min(out.size) == 48
    np.testing.assert_array_equal(np.asarray(out), _pixels(tmp_path / "o.png"))
    assert rgba.mode == "RGBA"  # the caller's image is not changed


def test_translate_folder_returns_the_summary_apply_prints(tmp_path: Path) -> None:
    folder = tmp_path / "glyphs"
    (folder / "sub").mkdir(parents=True)
    for i, glyph in enumerate(GLYPHS[:2]):
        (folder / ("sub" if i else "") / glyph.name).write_bytes(glyph.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    t = translate.load("ming2kai")
    summary = t.translate_folder(folder, tmp_path / "out", progress=False)
    assert isinstance(summary, translate.FolderSummary)
    assert (summary.done, summary.skipped, len(summary.failed)) == (2, 0, 1)
    assert summary.failed[0][0].name == "broken.png" and "broken.png" in summary.failure_lines()[0]
    assert any("non-image file" in note for note in summary.notes)
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == sorted([GLYPHS[0].name, f"sub/{GLYPHS[1].name}"])
    np.testing.assert_array_equal(_pixels(tmp_path / "out" / GLYPHS[0].name), np.asarray(t(GLYPHS[0])))
    again = t.translate_folder(folder, tmp_path / "out", progress=False)
    assert (again.done, again.skipped) == (0, 2) and "skipped 2" in again.closing_line()


def test_translator_refuses_what_it_cannot_translate() -> None:
    t = translate.load("ming2kai")
    with pytest.raises(ApplyError, match="PIL image, a path or a uint8 array"):
        t([1, 2, 3])  # type: ignore[call-overload]
    with pytest.raises(ApplyError, match="float32"):
        t(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ModelError, match="generat"):
        translate.load("mnist-cgan", direction="a2b")


@pytest.mark.parametrize("model", ["mnist-cgan", "mnist-cgan.onnx"])
def test_generator_samples_match_translate_sample(tmp_path: Path, model: str) -> None:
    _cli("sample", "--model", model, "--n", "16", "--seed", "3", "--label", "7", "--out", str(tmp_path / "grid.png"))
    _cli("sample", "--model", model, "--n", "16", "--seed", "3", "--label", "7", "--out", f"{tmp_path / 'each'}/")
    g = translate.load(model, backend="onnxruntime" if model.endswith(".onnx") else "auto")
    assert isinstance(g, translate.Generator)
    assert g.backend == ("onnxruntime" if model.endswith(".onnx") else "pytorch")
    assert g.classes == tuple(str(i) for i in range(10))
    images = g.sample(16, seed=3, label=7)
    assert len(images) == 16 and all(isinstance(image, Image.Image) for image in images)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(np.asarray(image), _pixels(tmp_path / "each" / f"{i:04d}.png"))
    np.testing.assert_array_equal(np.asarray(g.grid(16, seed=3, label=7)), _pixels(tmp_path / "grid.png"))
    array = g.sample(16, seed=3, label="7", as_array=True)
    assert array.dtype == np.uint8 and array.shape[0] == 16
    np.testing.assert_array_equal(array[..., 0], np.stack([np.asarray(image) for image in images]))


def test_generator_latents_codes_and_walks(tmp_path: Path) -> None:
    g = translate.load("mnist-infogan")
    assert [c.name for c in g.codes] == ["cat", "c1", "c2"]
    z = g.latents(4, seed=5)
    assert z.shape == (4, g.latent_dim) and z.dtype == np.float32
    fixed = g.sample(latents=z, seed=5, codes={"cat": 3, "c1": 0.5}, as_array=True)
    _cli("sample", "--model", "mnist-infogan", "--n", "4", "--seed", "5", "--code", "cat=3", "--code", "c1=0.5",
         "--out", f"{tmp_path / 'each'}/")  # fmt: skip
    for i in range(4):
        np.testing.assert_array_equal(fixed[i], _pixels(tmp_path / "each" / f"{i:04d}.png")[..., None])
    with pytest.raises(SamplingError, match="no such code"):
        g.sample(2, codes={"c9": 1})
    _cli("interpolate", "--model", "mnist-infogan", "--points", "2", "--steps", "3", "--out", str(tmp_path / "w.png"))
    frames = g.interpolate(points=2, steps=3, as_array=True)
    assert frames.shape[0] == 6  # two legs of three frames: out and back
    strip = np.asarray(translate.load("mnist-infogan").walk_code("c1", steps=3))
    assert strip.ndim == 2 and strip.shape[1] > strip.shape[0] / 10
    _cli("interpolate", "--model", "mnist-infogan", "--walk", "c1", "--steps", "3", "--out", str(tmp_path / "c1.png"))
    np.testing.assert_array_equal(strip, _pixels(tmp_path / "c1.png"))
    from translate.imageio import make_grid

    np.testing.assert_array_equal(make_grid(frames, ncols=3)[..., 0], _pixels(tmp_path / "w.png"))


def test_train_returns_a_run_that_loads_exports_and_evaluates(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "blobs"
    data.mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"{i}.png")
    run = translate.train(
        data, recipe="dcgan", preset="tiny", steps=3, image_size=32, out=tmp_path / "runs", progress=False,
        log_every=1,
    )  # fmt: skip
    assert isinstance(run, translate.Run) and run.folder == tmp_path / "runs" / "blobs"
    assert [record["step"] for record in run.metrics()] == [1, 2, 3]
    assert run.latest_checkpoint is not None and run.latest_checkpoint.name == "step_00000003.safetensors"
    g = run.load()
    assert isinstance(g, translate.Generator) and g.description.recipe == "dcgan"
    result = translate.export(run.folder, tmp_path / "g.onnx")
    assert result.path == tmp_path / "g.onnx" and result.bytes > 0
    onnx = translate.load(result.path, backend="onnxruntime")
    a, b = g.sample(4, seed=1, as_array=True), onnx.sample(4, seed=1, as_array=True)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    report = translate.evaluate(run.folder, data, n=8, features=str(REPO / "pretrained" / "mnist-features.onnx"))
    assert isinstance(report, translate.EvaluationReport)
    assert report.generated == 8 and report.real == 8 and np.isfinite(report.fid)
    assert report.to_dict()["fid"] == report.fid and any(name == "FID" for name, _ in report.rows())


def test_train_rejects_unknown_keys_with_a_hint(tmp_path: Path) -> None:
    from translate.errors import ConfigError

    with pytest.raises(ConfigError, match="lambda_cycle"):
        translate.train(tmp_path, recipe="cyclegan", preset="tiny", lambda_cycle_=3, progress=False)


def test_catalogue_lists_models_and_recipes() -> None:
    names = {row.name for row in translate.models()}
    assert {"ming2kai", "mnist-cgan", "horse2zebra"} <= names
    recipes = {info.name: info for info in translate.available_recipes()}
    assert {"cyclegan", "pix2pix", "dcgan", "lapgan"} <= set(recipes)
    assert all("tiny" in info.presets for info in recipes.values())
