"""Training end to end: run folder contents, exact resume, signals, the NaN guard and the CLI's errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from httpserver import Server
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.recipes import RECIPES
from translate.recipes.cyclegan import CycleGAN, CycleGANConfig, make_data
from translate.training.launch import complete_config
from translate.training.loop import Trainer, TrainingStopped

TINY = [
    "--image-size",
    "32",
    "--set",
    "generator_channels=8",
    "--set",
    "discriminator_channels=8",
    "--set",
    "num_blocks=1",
    "--set",
    "num_workers=0",
    "--set",
    "pool_size=3",
]


def tiny_config(steps: int, **extra: object) -> CycleGANConfig:
    values = {
        "data.image_size": 32,
        "generator_channels": 8,
        "discriminator_channels": 8,
        "num_blocks": 1,
        "num_workers": 0,
        "pool_size": 3,  # small, so the pool's swap branch runs within a few steps
        "train.steps": steps,
        "log_every": 2,
        "preview_every": 3,
        "checkpoint_every": 3,
        **extra,
    }
    return apply_overrides(CycleGANConfig(), values)


def make_trainer(config: CycleGANConfig, data_root: Path, run_dir: Path) -> Trainer:
    engine = Engine("cpu")
    data = make_data(config, data_root)
    config = complete_config(RECIPES["cyclegan"], config, data)
    return Trainer(CycleGAN(config, engine), data, engine, run_dir, progress=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_run_folder_contents(unpaired_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    last = make_trainer(tiny_config(7), unpaired_data, run).fit()
    assert last == checkpoint.checkpoint_path(run, 7)
    # checkpoints at every 3 steps and at the end, pruned to the newest 3
    assert [p.name for p in checkpoint.list_checkpoints(run)] == [
        "step_00000003.safetensors",
        "step_00000006.safetensors",
        "step_00000007.safetensors",
    ]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 6, 7]
    assert all(r["G"] > 0 and r["D_A"] > 0 and r["cyc_A"] > 0 for r in lines)
    grid = Image.open(run / "previews" / "step_00000006.png")
    # 6 rows (A, G(A), F(G(A)), B, F(B), G(F(B))) of 2 held-out images at 32 px, 2 px padding, after the row labels
    assert grid.size[0] > 2 * 32 + 3 * 2 and grid.size[1] == 6 * 32 + 7 * 2
    assert (run / "losses.png").is_file()
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_training_changes_every_network(unpaired_data: Path, tmp_path: Path) -> None:
    config = tiny_config(2)
    trainer = make_trainer(config, unpaired_data, tmp_path / "run")
    initial = {name: [p.detach().clone() for p in m.parameters()] for name, m in trainer.recipe.modules().items()}
    trainer.fit()
    for name, module in trainer.recipe.modules().items():
        assert any(not torch.equal(a, b) for a, b in zip(initial[name], module.parameters(), strict=True)), name


def test_resume_is_bit_identical(unpaired_data: Path, tmp_path: Path) -> None:
    config = tiny_config(8)
    straight = make_trainer(config, unpaired_data, tmp_path / "straight").fit()

    make_trainer(config, unpaired_data, tmp_path / "split").fit(stop_at=4)
    resumed = make_trainer(config, unpaired_data, tmp_path / "split")
    start = resumed.restore(checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "split")))
    assert start == 4
    assert_identical(straight, resumed.fit(start))


def test_non_finite_loss_stops_with_step_and_checkpoint(unpaired_data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_config(10), unpaired_data, tmp_path / "run")
    step_fn = trainer.recipe.train_step

    def poisoned(batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        metrics = step_fn(batch, step)
        if step == 4:  # the 5th step
            metrics["G"] = torch.tensor(float("nan"))
        return metrics

    trainer.recipe.train_step = poisoned  # type: ignore[method-assign]
    with pytest.raises(TrainingStopped) as exc:
        trainer.fit()
    message = str(exc.value)
    assert not exc.value.interrupted
    assert "at step 5" in message and "step_00000003.safetensors" in message
    assert checkpoint.latest_checkpoint(tmp_path / "run") == checkpoint.checkpoint_path(tmp_path / "run", 3)


def test_sigterm_saves_a_resumable_checkpoint(unpaired_data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_config(10), unpaired_data, tmp_path / "run")
    step_fn = trainer.recipe.train_step

    def terminated(batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-step; the step still completes
        return step_fn(batch, step)

    trainer.recipe.train_step = terminated  # type: ignore[method-assign]
    with pytest.raises(TrainingStopped) as exc:
        trainer.fit()
    assert exc.value.interrupted and "SIGTERM" in str(exc.value) and "--resume" in str(exc.value)
    assert checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "run")).step == 5
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers are restored


def test_cli_train_then_resume_with_more_steps(unpaired_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "runs"
    args = ["train", str(unpaired_data), "--out", str(out), "--steps", "3", *TINY, "--set", "log_every=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = out / "shapes"
    assert (run / "config.json").is_file() and checkpoint.latest_checkpoint(run).name == "step_00000003.safetensors"
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"] == "cyclegan" and saved["config"]["data"]["image_size"] == 32

    # the same command again is refused for an explicit name, and picks a fresh folder otherwise
    again = runner.invoke(app, [*args, "--name", "shapes"])
    assert again.exit_code == 2 and "--resume" in again.output
    fresh = runner.invoke(app, args)
    assert fresh.exit_code == 0 and (out / "shapes-2").is_dir()

    # resume needs nothing but the run: data and config come from the checkpoint; changes are reported
    resume = ["train", "--out", str(out), "--name", "shapes", "--resume", "--steps", "5", "--set", "lr=1e-4"]
    resumed = runner.invoke(app, resume)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at step 3" in resumed.output and "optim.lr 0.0002 → 0.0001" in resumed.output
    assert checkpoint.latest_checkpoint(run).name == "step_00000005.safetensors"


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["train", "no/such/folder"], 2, "no such folder"),
        (["train", "horse2zebr"], 2, "horse2zebra"),
        (["train", "{data}", "--set", "lambda_cycel=3"], 2, "lambda_cycle"),
        (["train", "{data}", "--set", "lr=fast"], 2, "expects float"),
        (["train", "{data}", "--recipe", "cyclgan"], 2, "cyclegan"),
        (["train", "{data}", "--preset", "huge"], 2, "quick"),
        (["train", "{empty}"], 2, "trainA"),
        (["train", "{empty}", "--recipe", "cyclegan"], 1, "trainA"),  # data that is there but unusable: a failed run
        (["train", "--resume", "--name", "nothing"], 2, "no checkpoint"),
    ],
)
def test_cli_train_errors(unpaired_data: Path, tmp_path: Path, args: list[str], code: int, expected: str) -> None:
    (tmp_path / "empty").mkdir()
    args = [a.format(data=unpaired_data, empty=tmp_path / "empty") for a in args]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == code, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_domain_without_images_is_a_clear_error(unpaired_data: Path, tmp_path: Path) -> None:
    for path in (unpaired_data / "trainB").iterdir():
        path.unlink()
    (unpaired_data / "trainB" / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["train", str(unpaired_data), "--out", str(tmp_path / "runs"), *TINY])
    assert result.exit_code == 1
    assert "broken.png" in result.output and "no usable image" in result.output


def test_explicit_domain_folders(unpaired_data: Path, tmp_path: Path) -> None:
    args = ["train", "--domain-a", str(unpaired_data / "trainA"), "--domain-b", str(unpaired_data / "trainB")]
    result = CliRunner().invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "runs"), *TINY])
    assert result.exit_code == 0, result.output
    assert checkpoint.latest_checkpoint(tmp_path / "runs" / "trainA") is not None


def test_known_dataset_is_downloaded_and_trained_on(server: Server, unpaired_data: Path, tmp_path: Path) -> None:
    archive = server.root / "cyclegan" / "datasets" / "horse2zebra.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in unpaired_data.rglob("*.png"):
            zf.write(path, f"horse2zebra/{path.relative_to(unpaired_data)}")
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "horse2zebra", "--steps", "1", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert checkpoint.latest_checkpoint(out / "horse2zebra") is not None
    assert (Path(os.environ["TRANSLATE_HOME"]) / "datasets" / "cyclegan" / "horse2zebra" / "trainA").is_dir()


def _train_process(args: list[str]) -> subprocess.Popen:
    # One thread each: the same in every process (bit-identical results need it) and robust on a busy machine.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "translate", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, so the test can signal it like a terminal's Ctrl-C
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_group_signal_saves_and_resume_matches_uninterrupted_run(
    unpaired_data: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "runs"
    common = [str(unpaired_data), "--out", str(out), "--steps", "30", *TINY, "--set", "checkpoint_every=1000"]
    straight = _train_process([*common, "--name", "straight"])
    assert straight.wait(timeout=180) == 0, straight.communicate()[0]

    # Ctrl-C, `timeout` and service managers signal the whole process group, DataLoader workers included: only
    # the main process may react.
    interrupted = _train_process([*common, "--name", "cut", "--set", "log_every=1", "--set", "num_workers=1"])
    metrics = out / "cut" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert time.monotonic() < deadline and interrupted.poll() is None, interrupted.communicate()[0]
        time.sleep(0.05)
    os.killpg(interrupted.pid, signum)
    output = interrupted.communicate(timeout=120)[0]
    assert interrupted.returncode == 130, output
    saved = checkpoint.latest_checkpoint(out / "cut")
    assert saved is not None and 3 <= checkpoint.read(saved).step < 30, output
    assert "--resume" in output

    resumed = _train_process(["--out", str(out), "--name", "cut", "--resume"])
    assert resumed.wait(timeout=180) == 0, resumed.communicate()[0]
    assert_identical(checkpoint.checkpoint_path(out / "straight", 30), checkpoint.checkpoint_path(out / "cut", 30))
