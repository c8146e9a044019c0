"""Fine-tuning: `translate train DATA --init MODEL` starts from trained weights with fresh optimisers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_shapes
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.core import checkpoint
from translate.training.loop import Trainer

TINY = ["--preset", "tiny", "--set", "num_workers=0", "--set", "pool_size=3"]


def _train(*args: str | Path) -> str:
    result = CliRunner().invoke(app, ["train", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, a 2-step tiny cyclegan run on it)."""
    root = tmp_path_factory.mktemp("init")
    data = root / "shapes"
    make_shapes(data / "trainA", 4, shape="circle", seed=1)
    make_shapes(data / "trainB", 4, shape="square", seed=2)
    _train(data, "--out", root / "runs", "--name", "first", "--steps", "2", *TINY)
    return data, root / "runs" / "first"


def test_init_starts_from_the_runs_final_weights_with_fresh_optimisers(
    source: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    data, first = source
    seen: dict[str, object] = {}
    fit = Trainer.fit

    def record_step_zero(self: Trainer, start_step: int = 0, **kwargs: object) -> Path:
        seen["start"] = start_step
        seen["weights"] = {
            f"{name}.{key}": value.detach().clone()
            for name, module in self.recipe.modules().items()
            for key, value in module.state_dict().items()
        }
        seen["optimiser state"] = [len(opt.state) for opt in self.recipe.optimizers().values()]
        return fit(self, start_step, **kwargs)

    monkeypatch.setattr(Trainer, "fit", record_step_zero)
    # No --preset: the networks take the source's settings (tiny), so they fit without repeating them.
    output = _train(data, "--init", first, "--out", tmp_path, "--name", "tuned", "--steps", "1", *TINY[2:])

    final = load_file(str(checkpoint.latest_checkpoint(first)))
    networks = ("G_AB.", "G_BA.", "D_A.", "D_B.")
    expected = {k: v for k, v in final.items() if k.startswith(networks)}
    assert seen["start"] == 0 and seen["weights"].keys() == expected.keys()
    assert all(torch.equal(seen["weights"][k], expected[k]) for k in expected)
    assert seen["optimiser state"] == [0, 0]  # fresh Adam moments
    assert "init: G_AB, G_BA, D_A, D_B from" in output

    info = checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "tuned")).meta["info"]
    assert info["init"]["model"] == str(first) and info["init"]["step"] == 2
    assert info["init"]["networks"] == ["G_AB", "G_BA", "D_A", "D_B"]
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init"] == info["init"]
    assert checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "tuned")).step == 1  # a new run: its own steps


def test_init_from_a_generator_only_file_loads_the_generator(tmp_path: Path, one_torch_thread: None) -> None:
    """A shipped model holds only its generator: the discriminator starts fresh."""
    images = tmp_path / "digits"
    make_shapes(images, 8, shape="circle", size=32)
    settings = ["--steps", "1", "--set", "num_workers=0", "--set", "batch_size=4"]
    output = _train(images, "--init", "mnist-dcgan", "--out", tmp_path, *settings)
    assert "init: G from" in output and "D start fresh" in output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--set", "generator_channels=16"], "G_AB.layers.1.weight: [8, 3, 7, 7] in the file, [16, 3, 7, 7] here"),
        (["--resume", "--name", "first"], "--init starts a new run"),
        (["--recipe", "dcgan", "--preset", "tiny"], "none of the dcgan networks"),
    ],
)
def test_init_that_does_not_fit_is_a_one_line_usage_error(
    source: tuple[Path, Path], extra: list[str], expected: str
) -> None:
    data, first = source
    args = ["train", str(data), "--init", str(first), "--out", str(first.parent), *extra]
    result = CliRunner().invoke(app, [*args, "--set", "num_workers=0"], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.output
