"""The generators shipped in pretrained/: manifest integrity and that they work with no arguments."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app
from translate.deploy.models import load_sampler, pretrained_dir, shipped_models


def test_manifest_matches_the_files() -> None:
    manifest = json.loads((pretrained_dir() / "manifest.json").read_text())
    assert {m["name"] for m in manifest["models"]} >= {"mnist-dcgan", "mnist-cgan", "ming2kai"}
    for entry in manifest["models"]:
        path = pretrained_dir() / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], entry["name"]
        assert path.stat().st_size <= 20 * 1000 * 1000
        assert {"recipe", "data", "steps", "command", "seed"} <= set(entry)
        if "onnx" not in entry:
            continue
        # The ONNX export of the same generator, made from exactly this checkpoint.
        exported = pretrained_dir() / entry["onnx"]
        assert hashlib.sha256(exported.read_bytes()).hexdigest() == entry["onnx_sha256"], entry["onnx"]
        props = {p.key: p.value for p in onnx.load(exported).metadata_props}
        assert props["source_sha256"] == entry["sha256"] and props["recipe"] == entry["recipe"]


def test_shipped_feature_networks_match_the_manifest() -> None:
    manifest = json.loads((pretrained_dir() / "manifest.json").read_text())
    assert {entry["name"] for entry in manifest["features"]} == {"mnist"}
    for entry in manifest["features"]:
        path = pretrained_dir() / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], entry["name"]
        props = {p.key: p.value for p in onnx.load(path).metadata_props}
        assert float(props["heldout_accuracy"]) == pytest.approx(entry["heldout_accuracy"])


@pytest.mark.parametrize("name", ["mnist-dcgan", "mnist-cgan", "mnist-clusters"])
def test_shipped_generators_load_and_are_deterministic(name: str) -> None:
    sampler = load_sampler(name, "cpu")
    model = sampler.model
    assert (model.channels, model.image_size, model.latent.shape) == (1, 32, (100,))
    z = np.random.default_rng(0).standard_normal((4, 100), dtype=np.float32)
    feeds = {"z": z}
    if model.class_input is not None:
        feeds[model.class_input.name] = np.arange(4, dtype=np.int64)
    for code in model.codes:  # mnist-clusters: the cluster, a code drawn by the clusters' shares
        feeds[code.name] = np.arange(4, dtype=np.int64)
    a, b = sampler(feeds), sampler(feeds)
    assert a.shape == (4, 1, 32, 32) and np.array_equal(a, b)
    assert a.min() >= -1 and a.max() <= 1 and a.std() > 0.1  # not a blank page
    if name == "mnist-cgan":
        assert list(model.class_names) == [str(d) for d in range(10)]
    if name == "mnist-clusters":
        (cluster,) = model.codes
        assert len(cluster.weights) == 30 and sum(cluster.weights) == pytest.approx(1)
        assert list(cluster.weights) == sorted(cluster.weights, reverse=True)  # numbered from the largest


def test_sample_and_interpolate_work_with_no_model_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["sample", "--n", "64"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "samples.png").size == (8 * 32 + 9 * 2, 8 * 32 + 9 * 2)
    result = runner.invoke(app, ["interpolate", "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "interpolation.gif").n_frames == 12
    assert {"mnist-dcgan", "mnist-clusters"} <= set(shipped_models())


def _ink_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the pixels darker than mid-grey."""
    ink_a, ink_b = a < 128, b < 128
    return float((ink_a & ink_b).sum() / max(1, (ink_a | ink_b).sum()))


def test_ming2kai_translates_the_sample_glyphs_right_after_install(tmp_path: Path) -> None:
    """`translate apply samples/ming --model ming2kai`: Kai-like glyphs, closer to the real Kai than the input."""
    samples = Path(__file__).resolve().parents[1] / "samples"
    inputs = sorted((samples / "ming").glob("*.png"))
    assert len(inputs) >= 8
    runs = []
    for name in ("first", "second"):
        out = tmp_path / name
        result = CliRunner().invoke(app, ["apply", str(samples / "ming"), "--model", "ming2kai", "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs.append({p.name: (out / p.name).read_bytes() for p in inputs})
    assert runs[0] == runs[1]  # eval mode: dropout off, the same output every time
    gains = []
    for path in inputs:
        ming = np.asarray(Image.open(path).convert("L"))
        kai = np.asarray(Image.open(samples / "kai" / path.name).convert("L"))  # the real Kai glyph
        output = np.asarray(Image.open(tmp_path / "first" / path.name).convert("L"))
        assert output.shape == ming.shape
        gains.append(_ink_iou(output, kai) - _ink_iou(ming, kai))
    assert np.mean(gains) > 0.1
