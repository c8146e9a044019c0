"""`translate probe`: a linear classifier on a trained discriminator's features (CPU, tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app
from translate.deploy import probe
from translate.errors import CheckpointError, ModelError

RUNNER = CliRunner()
SETTINGS = ["--preset", "tiny", "--device", "cpu", "--steps", "2", "--set", "num_workers=0"]


def _cli(*args: str | Path) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes any discriminator's first features tell apart: shapes on white, and the same inverted."""
    root = tmp_path_factory.mktemp("labelled")
    make_shapes(root / "light", 15, shape="circle", seed=5)
    for path in make_shapes(root / "dark", 15, shape="square", seed=6):
        Image.fromarray(255 - np.asarray(Image.open(path))).save(path)
    return root


@pytest.mark.parametrize("recipe", ["dcgan", "cgan", "progan", "lapgan"])  # progan: equalised layers; lapgan: per level
def test_probe_fits_on_discriminator_features_and_beats_chance(tmp_path: Path, labelled: Path, recipe: str) -> None:
    data = tmp_path / "data"
    if recipe == "cgan":
        make_shapes(data / "circle", 4, shape="circle", seed=1)
        make_shapes(data / "square", 4, shape="square", seed=2)
    else:
        make_shapes(data, 8, shape="circle", seed=1)
    _cli("train", data, "--recipe", recipe, "--out", tmp_path / "runs", "--name", "r", *SETTINGS)
    _cli("probe", tmp_path / "runs" / "r", "--data", labelled, "--json", tmp_path / "probe.json")
    report = json.loads((tmp_path / "probe.json").read_text())
    assert report["network"] == "D" and report["classes"] == ["dark", "light"]
    assert (report["train_images"], report["test_images"]) == (24, 6)  # 20% of each class held out
    assert report["chance"] == 0.5 and report["trained_accuracy"] > report["chance"]
    assert 0.0 <= report["untrained_accuracy"] <= 1.0


def test_conv_features_pool_every_convolution_to_four_by_four(tmp_path: Path) -> None:
    import torch

    network = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(5, 2, 3, 2))
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    found = probe.conv_features(network, images)
    assert found.shape == (3, 5 * 16 + 2 * 16)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
    first = torch.nn.functional.adaptive_max_pool2d(network[0](x), 4).flatten(1)
    np.testing.assert_allclose(found[:, :80], first.detach().double().numpy(), rtol=1e-6)


def test_probe_needs_a_discriminator_and_class_folders(tmp_path: Path, labelled: Path) -> None:
    with pytest.raises(CheckpointError, match="no discriminator"):
        probe.run_probe(probe.ProbeRequest("mnist-dcgan", labelled))
    flat = tmp_path / "flat"
    make_shapes(flat, 4, shape="circle")
    make_shapes(tmp_path / "data", 8, shape="circle", seed=1)
    _cli("train", tmp_path / "data", "--recipe", "dcgan", "--out", tmp_path / "runs", "--name", "r", *SETTINGS)
    with pytest.raises(ModelError, match="one sub-folder per class"):
        probe.run_probe(probe.ProbeRequest(str(tmp_path / "runs" / "r"), flat))
