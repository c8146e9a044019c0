"""Periodic evaluation while training: records at the right steps, best.safetensors, exact resume, early errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_shapes
from safetensors.torch import load_file
from test_evaluate import feature_onnx
from typer.testing import CliRunner

from translate.cli import app
from translate.core import checkpoint
from translate.deploy import features
from translate.deploy.evaluate import EvaluateRequest, run_evaluate
from translate.deploy.models import load_sampler, load_translator
from translate.errors import DatasetError
from translate.training.curves import losses_of

RUNNER = CliRunner()
STEPS = 5
SETTINGS = ["--preset", "tiny", "--device", "cpu", "--set", "num_workers=0", "--set", "log_every=1"]


def _cli(*args: str | Path, code: int = 0) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def _evaluations(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_step" in r]


def _eval_settings(root: Path) -> list[str]:
    return ["--set", "eval_every=2", "--set", "eval_n=16", "--set", f"eval_features={root / 'f.onnx'}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """A tiny DCGAN (EMA on, as the generation recipes default) evaluated every 2 of 5 steps against a folder."""
    root = tmp_path_factory.mktemp("periodic")
    make_shapes(root / "data", 12, shape="circle", seed=3)
    feature_onnx(root / "f.onnx", channels=3, side=8)
    args = ["train", root / "data", "--recipe", "dcgan", "--out", root / "runs", "--name", "r", "--steps", STEPS]
    _cli(*args, *SETTINGS, *_eval_settings(root), "--set", "checkpoint_every=2", "--set", f"eval_real={root / 'data'}")
    return root


def test_evaluations_are_logged_at_their_steps_and_the_last(run: Path) -> None:
    found = _evaluations(run / "runs" / "r")
    assert [r["step"] for r in found] == [r["eval_step"] for r in found] == [2, 4, 5]
    for record in found:
        assert math.isfinite(record["eval_fid"]) and record["eval_fid"] >= 0
        assert math.isfinite(record["eval_kid"]) and math.isfinite(record["eval_kid_std"])
        assert not losses_of(record)  # figures, not losses: drawn in their own panels
    assert (run / "runs" / "r" / "losses.png").is_file()


def test_best_checkpoint_holds_the_lowest_fid_and_deploys(run: Path) -> None:
    folder = run / "runs" / "r"
    found = _evaluations(folder)
    lowest = min(found, key=lambda r: r["eval_fid"])
    best = checkpoint.read(folder / "best.safetensors")
    assert best.step == lowest["step"]
    assert best.meta["info"]["best"]["fid"] == lowest["eval_fid"]
    assert "G_ema" in best.meta["modules"]  # the averages are what was evaluated, and what deploys
    assert found[-1]["eval_best_fid"] == lowest["eval_fid"]
    # The periodic checkpoints record the best so far, which a resumed run compares with.
    last = checkpoint.read(checkpoint.latest_checkpoint(folder))
    assert last.meta["info"]["eval_best"] == {"step": lowest["step"], "fid": lowest["eval_fid"]}
    # `translate evaluate` of best.safetensors, with the run's seed, n and real folder, gives the logged figures.
    request = EvaluateRequest(str(folder / "best.safetensors"), run / "data", n=16, features=str(run / "f.onnx"))
    report = run_evaluate(request)
    assert report["fid"] == pytest.approx(lowest["eval_fid"], rel=1e-6)
    assert report["kid_mean"] == pytest.approx(lowest["eval_kid"], rel=1e-6, abs=1e-9)
    assert load_sampler(str(folder / "best.safetensors"), "cpu").model.source_step == best.step
    _cli("sample", "--model", folder / "best.safetensors", "--n", 4, "--out", f"{run / 'samples'}/", "--device", "cpu")
    assert len(list((run / "samples").glob("*.png"))) == 4


def test_resume_with_evaluation_is_bit_identical(run: Path) -> None:
    straight = run / "runs" / "r"
    resumed = run / "runs" / "resumed"
    shutil.copytree(straight, resumed)
    checkpoint.latest_checkpoint(resumed).unlink()  # back to step 4: step 5 and its evaluation run again
    _cli("train", run / "data", "--out", run / "runs", "--name", "resumed", "--resume", "--device", "cpu")
    want = load_file(checkpoint.latest_checkpoint(straight))
    got = load_file(checkpoint.latest_checkpoint(resumed))
    assert want.keys() == got.keys()
    assert [key for key in want if not torch.equal(want[key], got[key])] == []

    def figures(folder: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("time", "eval_seconds")} for r in _evaluations(folder)]

    assert figures(resumed) == figures(straight)
    a, b = checkpoint.read(straight / "best.safetensors"), checkpoint.read(resumed / "best.safetensors")

    def untimed(best: dict) -> dict:  # the evaluation's wall-clock seconds differ from run to run
        return {k: v for k, v in best.items() if k != "seconds"}

    assert a.step == b.step and untimed(a.meta["info"]["best"]) == untimed(b.meta["info"]["best"])
    assert (
        checkpoint.read(checkpoint.latest_checkpoint(resumed)).meta["info"]["eval_best"]
        == (checkpoint.read(checkpoint.latest_checkpoint(straight)).meta["info"]["eval_best"])
    )


def test_a_translator_translates_held_out_a_against_held_out_b(
    unpaired_data: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    feature_onnx(tmp_path / "f.onnx", channels=3, side=8)
    args = ["train", unpaired_data, "--recipe", "cyclegan", "--out", tmp_path / "runs", "--name", "t", "--steps", 2]
    output = _cli(*args, *SETTINGS, *_eval_settings(tmp_path))
    assert "eval step 2: FID" in output and "2 translated vs 2 real" in output  # testA → testB, 2 images each
    found = _evaluations(tmp_path / "runs" / "t")
    assert [r["step"] for r in found] == [2] and math.isfinite(found[0]["eval_fid"])
    translator = load_translator(str(tmp_path / "runs" / "t" / "best.safetensors"), "a2b", "cpu")
    assert translator.model.source_step == 2


@pytest.mark.parametrize("value", ["nosuch", "missing.onnx"])
def test_bad_eval_features_fail_in_one_line_before_training(tmp_path: Path, value: str) -> None:
    make_shapes(tmp_path / "data", 4, shape="circle")
    args = ["train", tmp_path / "data", "--recipe", "dcgan", "--out", tmp_path / "runs", "--name", "r", "--steps", 2]
    output = _cli(*args, *SETTINGS, "--set", "eval_every=1", "--set", f"eval_features={value}", code=2)
    lines = [line for line in output.splitlines() if "train.eval_features" in line]
    assert len(lines) == 1 and value in lines[0]
    assert not checkpoint.list_checkpoints(tmp_path / "runs" / "r")
    assert not (tmp_path / "runs" / "r" / "metrics.jsonl").exists()


def test_a_failed_feature_download_stops_the_run_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(progress: bool = True) -> str:
        raise DatasetError("cannot download https://example.invalid/inception.pth: no network. Try again later.")

    monkeypatch.setattr(features, "inception_weights", offline)
    make_shapes(tmp_path / "data", 4, shape="circle")
    args = ["train", tmp_path / "data", "--recipe", "dcgan", "--out", tmp_path / "runs", "--name", "r", "--steps", 2]
    output = _cli(*args, *SETTINGS, "--set", "eval_every=1", code=1)
    assert "train.eval_features=inception: cannot download" in output
    assert not checkpoint.list_checkpoints(tmp_path / "runs" / "r")


def test_a_translator_without_held_out_folders_uses_training_pairs(tmp_path: Path, one_torch_thread: None) -> None:
    for side, shape in (("A", "circle"), ("B", "square")):
        for i, path in enumerate(make_shapes(tmp_path / "shapes" / side, 3, shape=shape, seed=5)):
            path.rename(path.with_name(f"{i}.png"))  # pairs match by name
    feature_onnx(tmp_path / "f.onnx", channels=3, side=8)
    args = ["train", tmp_path / "shapes", "--recipe", "pix2pix", "--out", tmp_path / "runs", "--name", "p"]
    output = _cli(*args, "--steps", 2, *SETTINGS, *_eval_settings(tmp_path))
    assert "3 translated vs 3 real" in output  # training A crops translated, against their B crops
    assert math.isfinite(_evaluations(tmp_path / "runs" / "p")[0]["eval_fid"])
    assert checkpoint.read(tmp_path / "runs" / "p" / "best.safetensors").step == 2


def test_evaluation_records_go_to_tensorboard_as_eval_scalars() -> None:
    from translate.training.curves import TensorBoard

    class Writer:
        def __init__(self) -> None:
            self.tags: list[str] = []

        def add_scalar(self, tag: str, value: float, step: int, walltime: float | None = None) -> None:
            self.tags.append(tag)

        def flush(self) -> None:
            pass

    board = TensorBoard.__new__(TensorBoard)
    board.writer = Writer()  # type: ignore[assignment]
    board.scalars({"step": 4, "eval_step": 4, "eval_fid": 3.0, "eval_kid": 0.1, "eval_best_fid": None, "time": 1.0})
    assert board.writer.tags == ["eval/fid", "eval/kid"]  # type: ignore[attr-defined]
