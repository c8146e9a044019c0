"""What a run shows and keeps: the progress line at any width, metrics.jsonl, losses.png, TensorBoard events and
labelled preview grids."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from translate.config import apply_overrides
from translate.core.engine import Engine
from translate.recipes import RECIPES
from translate.recipes.cyclegan import CycleGAN, CycleGANConfig, make_data
from translate.training.curves import panels, read_metrics, smooth
from translate.training.launch import complete_config
from translate.training.loop import Trainer
from translate.training.progress import training_progress

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
CYCLEGAN_LOSSES = ["G", "D_A", "D_B", "adv_AB", "adv_BA", "cyc_A", "cyc_B", "idt_A", "idt_B"]


def _render(width: int, losses: list[str]) -> list[str]:
    """The training line at a terminal `width` wide, as the trainer draws it after step 1200 of 20000."""
    console = Console(width=width, file=io.StringIO(), force_terminal=True, record=True)
    progress = training_progress(console)
    task = progress.add_task("train", total=20000, completed=0, losses=[], rate="")
    progress.update(task, completed=1200, losses=losses, rate="12.34 it/s")
    console.print(progress.make_tasks_table(progress.tasks))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_progress_line_shows_step_rate_and_eta_first_and_never_wraps(width: int) -> None:
    losses = [f"{name} {value:.3f}" for name, value in zip(CYCLEGAN_LOSSES, np.linspace(0.1, 20.5, 9), strict=True)]
    lines = _render(width, losses)
    assert len(lines) == 1 and len(lines[0]) < width, lines
    line = lines[0]
    assert line.startswith("train 1200/20000 · 12.34 it/s · eta "), line
    shown = [item for item in losses if item in line]
    assert shown and shown == losses[: len(shown)]  # as many as fit, in order, each whole
    if width == 120:
        assert len(shown) > len([item for item in losses if item in _render(80, losses)[0]])


def test_progress_line_at_a_very_narrow_terminal_keeps_the_count() -> None:
    line = _render(40, ["G 1.000"])[0]
    assert "1200/20000" in line and len(line) < 40


def test_loss_panels_follow_the_recipe_groups() -> None:
    groups = {"generator G": ("G", "L1"), "discriminator D": ("D",)}
    assert panels(["G", "D", "L1", "extra"], groups) == {
        "generator G": ["G", "L1"],
        "discriminator D": ["D"],
        "other": ["extra"],
    }
    assert panels(["mean"], {}) == {"losses": ["mean"]}
    assert smooth([2.0, 2.0, 2.0]).tolist() == pytest.approx([2.0, 2.0, 2.0])  # debiased: no pull towards 0


def _train(data: Path, run_dir: Path, **extra: object) -> Trainer:
    values = {
        **RECIPES["cyclegan"].presets["tiny"],
        "num_workers": 0,
        "pool_size": 3,
        "train.steps": 4,
        "log_every": 2,
        "preview_every": 2,
        **extra,
    }
    config = apply_overrides(CycleGANConfig(), values)
    engine = Engine("cpu")
    training = make_data(config, data)
    config = complete_config(RECIPES["cyclegan"], config, training)
    trainer = Trainer(CycleGAN(config, engine), training, engine, run_dir, progress=False)
    trainer.fit()
    return trainer


def test_a_run_keeps_its_curves(unpaired_data: Path, tmp_path: Path, one_torch_thread: None) -> None:
    run = tmp_path / "run"
    _train(unpaired_data, run)

    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4]
    # The rates of each record's last step: constant for the first half, then decaying linearly to zero.
    assert [r["lr_G"] for r in records] == [r["lr_D"] for r in records] == pytest.approx([2e-4, 1e-4])
    for record in records:
        assert set(CYCLEGAN_LOSSES) <= record.keys()
        assert record["images"] == record["step"]  # batch 1, one process
        assert record["it_s"] > 0 and abs(record["time"] - records[0]["time"]) < 600
    with Image.open(run / "losses.png") as plot:
        assert plot.format == "PNG" and plot.size[0] >= 600 and plot.size[1] >= 400

    # Rows labelled A, G(A), ... in a white margin left of the 2 preview columns of 32 px.
    grid = np.asarray(Image.open(run / "previews" / "step_00000004.png"))
    margin = grid.shape[1] - (2 * 32 + 3 * 2)
    assert grid.shape[0] == 6 * 32 + 7 * 2 and margin > 8
    rows = [grid[2 + r * 34 : 2 + r * 34 + 32, :margin] for r in range(6)]
    assert all((row < 128).any() for row in rows)  # every row's label has ink
    assert not (rows[0] == rows[2]).all()  # "A" and "F(G(A))" are different words

    events = list(run.glob("events.out.tfevents.*"))
    if not HAS_TENSORBOARD:
        assert not events
        return
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert len(events) == 1
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"loss/G", "loss/D_A", "lr/G", "it_s", "images"} <= set(tags["scalars"])
    assert [e.step for e in accumulator.Scalars("loss/G")] == [2, 4]
    assert accumulator.Scalars("loss/G")[-1].value == pytest.approx(records[-1]["G"])
    assert [e.step for e in accumulator.Images("preview")] == [2, 4]


def test_tensorboard_can_be_turned_off(unpaired_data: Path, tmp_path: Path, one_torch_thread: None) -> None:
    run = tmp_path / "run"
    _train(unpaired_data, run, **{"train.steps": 2, "train.tensorboard": False})
    assert (run / "losses.png").is_file() and not list(run.glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2]
