"""`translate.train`: train a model from Python as `translate train` does, and `Run`, the folder it fills."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate.api.generator import Generator
from translate.api.translator import Translator

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class Run:
    """A training run's folder: checkpoints/, previews/, metrics.jsonl, losses.png, config.json.

    Examples:
        >>> run = translate.Run("runs/horse2zebra")
        >>> run.metrics()[-1]["G"]
        >>> zebra = run.load()(photo)
    """

    folder: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    @property
    def checkpoints(self) -> list[Path]:
        """The run's checkpoints, oldest first."""
        from translate.core.checkpoint import list_checkpoints

        return list_checkpoints(self.folder)

    @property
    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint (what `--resume`, `apply --model RUN` and `export RUN` use), None before the first."""
        found = self.checkpoints
        return found[-1] if found else None

    def metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl, one per log step: `step`, the losses, learning rates, images, time (and
        the periodic evaluations' `eval_*` figures on their own records)."""
        from translate.training.curves import read_metrics

        return read_metrics(self.folder / "metrics.jsonl")

    def load(
        self, *, backend: str = "auto", device: str = "auto", direction: str | None = None
    ) -> Translator | Generator:
        """The run's newest weights as a `Translator` or `Generator` (its moving average when the run kept one)."""
        from translate.api.loading import load

        return load(self.folder, backend=backend, device=device, direction=direction)


def train(
    data: str | Path | None = None,
    *,
    recipe: str | None = None,
    preset: str | None = None,
    steps: int | None = None,
    image_size: int | None = None,
    batch_size: int | None = None,
    out: str | Path = "runs",
    name: str | None = None,
    resume: bool = False,
    seed: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    init: str | Path | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    settings: Sequence[str] = (),
    domain_a: str | Path | None = None,
    domain_b: str | Path | None = None,
    direction: str | None = None,
    flip: bool | None = None,
    compile: bool = False,
    channels_last: bool | None = None,
    grad_checkpointing: bool = False,
    progress: bool = True,
    console: Console | None = None,
    **overrides: Any,
) -> Run:
    """Train a generator on a folder of images or a known dataset; returns the run when training ends.

    Settings, later ones winning: the recipe's defaults < `preset` < the keyword options (`steps`, `image_size`,
    ...) < `config` < `settings` < `overrides`.

    Args:
        data: a folder (trainA/ and trainB/ for cyclegan; A|B pairs or A/ and B/ for pix2pix; images, or one
            sub-folder per class, for the generators) or a known dataset's name (`translate datasets`).
        recipe: the training method (`translate.available_recipes()` lists them); default: the one for DATA's
            layout.
        preset: named settings of the recipe (every recipe has "tiny", for tests and smoke runs).
        out: the folder that holds the runs.
        name: the run's folder name inside `out` (default: the data folder's name).
        resume: continue OUT/NAME from its newest checkpoint, exactly as if it had not stopped.
        init: start from these weights (a run folder, a checkpoint, a shipped or official name).
        config: a YAML or TOML file as `translate config RECIPE` writes, or a mapping of config keys to values.
        settings: "KEY=VALUE" strings, parsed as `--set` parses them.
        progress: draw the progress line on a terminal (in a notebook: one line per log step).
        **overrides: any config field by its name or dotted path, with a typed value: `lambda_cycle=5`,
            `**{"train.log_every": 10}`.

    Examples:
        >>> run = translate.train("digits/", recipe="dcgan", preset="tiny", steps=50, image_size=32)
        >>> run.load().grid(16)
    """
    from rich.console import Console

    from translate.training.launch import TrainRequest
    from translate.training.launch import train as launch

    values = dict(config) if isinstance(config, Mapping) else {}
    values.update(overrides)
    request = TrainRequest(
        data=None if data is None else str(data),
        recipe=recipe,
        out=Path(out),
        name=name,
        resume=resume,
        device=device,
        precision=precision,
        compile=compile,
        channels_last=channels_last,
        grad_checkpointing=grad_checkpointing,
        preset=preset,
        options={
            "train.steps": steps,
            "data.image_size": image_size,
            "train.batch_size": batch_size,
            "train.seed": seed,
            "data.flip": flip,
            "direction": direction,
        },
        overrides=list(settings),
        domain_a=None if domain_a is None else Path(domain_a),
        domain_b=None if domain_b is None else Path(domain_b),
        config_file=None if config is None or isinstance(config, Mapping) else Path(config),
        init=None if init is None else str(init),
        values=values,
        progress=progress,
    )
    return Run(launch(request, console=console or Console()))
