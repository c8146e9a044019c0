"""One trainer per run folder (an OS lock on RUN/.lock), and a resumed run's metrics log without repeated steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from translate.cli import app
from translate.core import checkpoint
from translate.errors import RunLockedError
from translate.training.launch import TrainRequest, train
from translate.training.lock import LOCK_NAME, run_lock
from translate.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = ["--preset", "tiny", "--device", "cpu", "--steps", "4", "--set", "num_workers=0"]
SETTINGS += ["--set", "checkpoint_every=2", "--set", "log_every=1", "--set", "preview_every=100"]
# Takes the run's lock in another process, says so, and holds it until its stdin closes (or it is killed).
HOLD = """\
import sys
from pathlib import Path
from translate.training.lock import run_lock

with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_elsewhere(run_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `run_dir`'s lock for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        if holder.poll() is None:
            holder.communicate(timeout=60)  # closes its stdin: it releases the lock and exits


def _train(data: Path, runs: Path, *, resume: bool = False) -> str:
    """`translate train` of the tiny run runs/X (a resume keeps the saved config, so it takes no --preset)."""
    settings = [*SETTINGS[2:], "--resume"] if resume else SETTINGS
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(runs), "--name", "X", *settings])
    assert result.exit_code == 0, result.output
    return result.output


def _assert_free(run_dir: Path) -> None:
    """Nobody holds the lock, and nothing of it is left in the folder."""
    assert not (run_dir / LOCK_NAME).exists()
    with run_lock(run_dir):
        pass


def test_a_second_trainer_gets_one_line_naming_the_first(unpaired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "X"
    with held_elsewhere(run_dir) as holder:
        # The second trainer as a user starts it: a process of its own, through the command line.
        args = ["train", str(unpaired_data), "--out", str(tmp_path / "runs"), "--name", "X", *SETTINGS]
        second = subprocess.run([sys.executable, "-m", "translate", *args], capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"{run_dir} is being trained by process {holder.pid} on host {socket.gethostname()} (since " in lines[0]
        assert lines[0].endswith("; wait for it, or pick another --name")
        # It stopped before writing anything: no config.json, no stale-temp sweep, no metrics.
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]
        # --resume is refused the same way.
        request = TrainRequest(out=tmp_path / "runs", name="X", resume=True, device="cpu", progress=False)
        with pytest.raises(RunLockedError, match=f"by process {holder.pid} "):
            train(request)
    _assert_free(run_dir)


def test_a_lock_left_by_a_killed_trainer_does_not_block(unpaired_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "X"
    with held_elsewhere(run_dir) as holder:
        holder.kill()  # kill -9: no clean-up runs, the file stays with the dead holder's PID in it
        holder.wait(timeout=60)
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == holder.pid
    _train(unpaired_data, tmp_path / "runs")
    assert checkpoint.latest_checkpoint(run_dir) == checkpoint.checkpoint_path(run_dir, 4)
    _assert_free(run_dir)


def test_the_lock_is_released_after_a_run(unpaired_data: Path, tmp_path: Path) -> None:
    _train(unpaired_data, tmp_path / "runs")
    _assert_free(tmp_path / "runs" / "X")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_held_while_training_and_released_after_an_error(
    unpaired_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    run_dir = tmp_path / "runs" / "X"

    def fail(self: Trainer, *args: object, **kwargs: object) -> Path:
        assert (run_dir / "config.json").is_file()  # written under the lock
        with pytest.raises(RunLockedError, match=f"by process {os.getpid()} "), run_lock(run_dir):
            pass
        raise error("mid-training")

    monkeypatch.setattr(Trainer, "fit", fail)
    request = TrainRequest(
        data=str(unpaired_data), out=tmp_path / "runs", name="X", device="cpu", preset="tiny", progress=False
    )
    with pytest.raises(error, match="mid-training"):
        train(request)
    _assert_free(run_dir)


def test_an_error_before_training_leaves_no_lock_and_no_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "runs"), "--name", "typo", "--resume"])
    assert result.exit_code == 2 and "no checkpoint" in result.output
    assert not (tmp_path / "runs" / "typo").exists()


@pytest.mark.parametrize("torn", [False, True])
def test_resume_drops_the_metrics_logged_after_the_checkpoint(unpaired_data: Path, tmp_path: Path, torn: bool) -> None:
    runs = tmp_path / "runs"
    run_dir, log = runs / "X", runs / "X" / "metrics.jsonl"
    _train(unpaired_data, runs)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
    # A crash after step 4 was logged and before its checkpoint was saved; `torn`: in the middle of writing the next
    # record, whose fragment the next append would otherwise extend into one unreadable line.
    checkpoint.checkpoint_path(run_dir, 4).unlink()
    if torn:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write('{"step": 5, "G": 0.')

    output = _train(unpaired_data, runs, resume=True)
    assert "resuming at step 2" in output
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
