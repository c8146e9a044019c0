"""A run's curves: `losses.png` drawn from `metrics.jsonl`, and TensorBoard events when tensorboard is installed.

Both are optional views of what the trainer logs anyway; matplotlib and TensorBoard are imported only when a
plot or an event is written, so a run that never reaches a preview does not pay for them.
"""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from translate.errors import ConfigError
from translate.files import atomic_write

# Keys of a metrics.jsonl record that are not losses (the learning rates are `lr_<optimiser>`).
NOT_LOSSES = frozenset({"step", "phase", "it_s", "images", "time", "aug_p", "aug_p_A", "aug_p_B"})  # ADA p: a setting
# Logged measures that are drawn in losses.png (in the panel their recipe names) but are not losses: BEGAN's
# equilibrium variable k_t and convergence measure M_global. TensorBoard files them under their own names.
MEASURES = frozenset({"k_t", "M_global"})
EVAL = "eval_"  # periodic evaluations' records (training/periodic_eval.py): figures, drawn in panels of their own
EVAL_PANELS = {"FID (evaluation)": "eval_fid", "KID (evaluation)": "eval_kid"}
SMOOTHING = 0.6  # exponential moving average weight, TensorBoard's default (each record already averages a window)


def losses_of(record: Mapping[str, Any]) -> dict[str, float]:
    """The losses in a metrics.jsonl record (no step, speed, learning rate, counter, time or evaluation)."""
    return {k: v for k, v in record.items() if k not in NOT_LOSSES and not k.startswith(("lr_", EVAL))}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file; a line a crash cut short is left out."""
    records = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average, as TensorBoard draws it (the first points are not pulled to zero)."""
    out, average = np.empty(len(values)), 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[i] = average / (1 - weight ** (i + 1))
    return out


def panels(keys: Sequence[str], groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Loss names per panel: one per network group the recipe declares (its `loss_groups`), in its order, then
    "other" for losses no group names."""
    out = {title: [k for k in names if k in keys] for title, names in groups.items()}
    out = {title: names for title, names in out.items() if names}
    grouped = {k for names in out.values() for k in names}
    rest = [k for k in keys if k not in grouped]
    if rest:
        out["other" if out else "losses"] = rest
    return out


def plot_losses(metrics: Path, out: Path, groups: Mapping[str, Sequence[str]], title: str = "") -> bool:
    """Draw every loss in `metrics` (raw, faint, and smoothed), one panel per network group, then the periodic
    evaluations' FID and KID (as measured), into the PNG `out` (written atomically). Returns False, writing
    nothing, when there is nothing to draw yet."""
    records = read_metrics(metrics)
    keys = list(dict.fromkeys(k for r in records for k in losses_of(r)))
    figures = {name: key for name, key in EVAL_PANELS.items() if any(_number(r.get(key)) for r in records)}
    if not keys and not figures:
        return False
    # The object-oriented API with the Agg canvas: no pyplot, so no global backend or figure state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layout = panels(keys, groups) if keys else {}
    figure = Figure(figsize=(8, 2.6 * (len(layout) + len(figures)) + 0.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(layout) + len(figures), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, key) in zip(axes[len(layout) :], figures.items(), strict=True):  # as measured, not smoothed
        points = [(r["step"], float(r[key])) for r in records if _number(r.get(key))]
        ax.plot([p[0] for p in points], [p[1] for p in points], color="C3", marker="o", markersize=3, label=key)
        ax.set_title(name, loc="left", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    for ax, (name, names) in zip(axes, layout.items(), strict=False):
        for index, key in enumerate(names):
            points = [(r["step"], float(r[key])) for r in records if isinstance(r.get(key), int | float)]
            steps, values = [p[0] for p in points], [p[1] for p in points]
            color = f"C{index % 10}"
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, smooth(values), color=color, linewidth=1.6, label=key)
        ax.set_title(name, loc="left", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the panel, not over it
    axes[-1].set_xlabel("step")
    if title:
        figure.suptitle(title, fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(out, buffer.getvalue())
    return True


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def tensorboard_wanted(setting: bool | None) -> bool:
    """train.tensorboard: True (tensorboard must be installed), False, or None (when it is installed)."""
    installed = importlib.util.find_spec("tensorboard") is not None
    if setting and not installed:
        raise ConfigError("train.tensorboard=true needs the tensorboard package: pip install tensorboard")
    return installed if setting is None else setting


class TensorBoard:
    """Scalars and preview grids as TensorBoard events in the run folder (`tensorboard --logdir runs`)."""

    def __init__(self, run_dir: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run purges the events a crash logged after its checkpoint, as metrics.jsonl is trimmed.
        self.writer = SummaryWriter(str(run_dir), purge_step=start_step or None)

    def scalars(self, record: Mapping[str, Any]) -> None:
        step = record["step"]
        for key, value in record.items():
            if key in ("step", "phase", "time", "eval_step") or not _number(value):
                continue
            if key.startswith(EVAL):  # a periodic evaluation's figures: eval/fid, eval/kid, ...
                tag = f"eval/{key[len(EVAL) :]}"
            elif key.startswith("lr_"):
                tag = f"lr/{key[3:]}"
            else:
                tag = key if key in NOT_LOSSES | MEASURES else f"loss/{key}"
            self.writer.add_scalar(tag, value, step, walltime=record.get("time"))
        self.writer.flush()

    def image(self, step: int, grid: np.ndarray) -> None:
        """A preview grid, uint8 (H, W, C)."""
        self.writer.add_image("preview", grid, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
