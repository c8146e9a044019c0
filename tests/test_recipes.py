"""Every registered recipe, at its `tiny` preset, end to end through the command line: train, resume bit-exactly,
export with parity, and run the export by ONNX Runtime.

A new recipe is covered by adding it to the registry: its data comes from its data family and its checks from its
kind, never from its name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.core import checkpoint
from translate.recipes import RECIPES
from translate.recipes.base import RecipeSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
SETTINGS = ["--preset", "tiny", "--device", "cpu", "--steps", "4", "--set", "num_workers=0"]
SETTINGS += ["--set", "checkpoint_every=2", "--set", "preview_every=2", "--set", "log_every=1"]


def _paired(root: Path, count: int) -> None:
    """A/ and B/ with the same file names: a shape and its colour-inverted copy."""
    for i, source in enumerate(make_shapes(root / "source", count, shape="circle", seed=5)):
        image = np.asarray(Image.open(source))
        for folder, pixels in (("A", image), ("B", 255 - image)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / folder / f"pair_{i}.png")
    shutil.rmtree(root / "source")


def _data(root: Path, spec: RecipeSpec) -> Path:
    """A tiny folder in the layout of the recipe's data family."""
    if spec.data == "unpaired":
        make_shapes(root / "trainA", 4, shape="circle", seed=1)
        make_shapes(root / "trainB", 4, shape="square", seed=2)
    elif spec.data == "paired":
        _paired(root, 4)
    elif spec.data == "images":
        make_shapes(root, 8, shape="circle", seed=3)
    else:  # classes: one sub-folder per class
        make_shapes(root / "circle", 4, shape="circle", seed=3)
        make_shapes(root / "square", 4, shape="square", seed=4)
    return root


def _cli(*args: str | Path) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_resumes_exactly_exports_and_runs(name: str, tmp_path: Path) -> None:
    spec = RECIPES[name]
    data = _data(tmp_path / "data", spec)
    runs = tmp_path / "runs"
    _cli("train", data, "--recipe", name, "--out", runs, "--name", "straight", *SETTINGS)
    straight = runs / "straight"
    assert [p.name for p in checkpoint.list_checkpoints(straight)] == [
        "step_00000002.safetensors",
        "step_00000004.safetensors",
    ]
    assert (straight / "previews" / "step_00000004.png").is_file()

    # The same run, stopped after its step-2 checkpoint and resumed: bit-identical to the uninterrupted one.
    resumed = runs / "resumed"
    shutil.copytree(straight, resumed)
    checkpoint.latest_checkpoint(resumed).unlink()
    _cli("train", data, "--out", runs, "--name", "resumed", "--resume", *SETTINGS[2:])
    expected = load_file(checkpoint.latest_checkpoint(straight))
    got = load_file(checkpoint.latest_checkpoint(resumed))
    assert expected.keys() == got.keys()
    different = [key for key in expected if not (expected[key] == got[key]).all()]
    assert not different, different

    onnx_file = tmp_path / f"{name}.onnx"
    assert "parity fp32" in _cli("export", straight, "--out", onnx_file)
    if spec.is_generator:
        grid = tmp_path / "grid.png"
        _cli("sample", "--model", onnx_file, "--n", "4", "--out", grid, "--device", "cpu")
        assert Image.open(grid).size[0] > 32
    else:
        photos = tmp_path / "photos"
        make_shapes(photos, 2, shape="square", size=36, seed=9)
        out = tmp_path / "translated"
        _cli("apply", photos, "--model", onnx_file, "--out", out, "--device", "cpu")
        outputs = sorted(p.name for p in out.iterdir())
        assert outputs == sorted(p.name for p in photos.iterdir())
        assert Image.open(out / outputs[0]).size == (36, 36)
