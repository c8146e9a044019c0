"""From a `translate train` request to a running Trainer: data, recipe, config, run folder, resume, processes."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from translate.config import apply_overrides, describe, from_dict, to_dict
from translate.data import known
from translate.data.folders import detect_layout
from translate.errors import CheckpointError, ConfigError, DataError
from translate.files import atomic_write
from translate.recipes import default_recipe, get_recipe, recipe_of
from translate.recipes.base import RecipeSpec, TrainingData
from translate.train import checkpoint
from translate.train.engine import (
    Engine,
    init_distributed,
    launched_distributed,
    main_process_first,
    shutdown_distributed,
)
from translate.train.lock import run_lock
from translate.train.loop import Trainer, TrainingStopped


def resolve_steps(config: Any, steps: int) -> Any:
    """The config with train.steps set."""
    return replace(config, train=replace(config.train, steps=steps))


def complete_config(spec: RecipeSpec, config: Any, data: TrainingData) -> Any:
    """Fill what the data decides: image channels, and the recipe's default length when steps is 0."""
    config = replace(config, data=replace(config.data, channels=data.channels))
    if data.class_names:
        config = replace(config, class_names=data.class_names)
    if config.train.steps == 0:
        config = resolve_steps(config, spec.default_steps(config, data))
    return config


@dataclass
class TrainRequest:
    """What `translate train` was asked; every field maps to a command-line option."""

    data: str | None = None  # a folder, or a known dataset name
    model: str | None = None  # None: cyclegan when the data has the trainA/trainB layout
    out: Path = Path("runs")
    name: str | None = None
    resume: bool = False
    device: str = "auto"
    precision: str = "auto"  # how the run computes (engine settings): free to change on resume
    compile: bool = False
    channels_last: bool | None = None
    grad_checkpointing: bool = False
    preset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # first-class options, e.g. {"train.steps": 100}
    overrides: list[str] = field(default_factory=list)  # --set key=value
    domain_a: Path | None = None
    domain_b: Path | None = None
    progress: bool = True


def resolve_data(data: str, family: str, console: Console) -> Path:
    """A folder as given, or a known dataset downloaded into the cache."""
    path = Path(data).expanduser()
    if path.exists():
        return path
    if known.is_known(data, family):
        return known.prepare(data, family, progress=console.is_terminal)
    close = known.close_matches(data)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise DataError(f"{data}: no such folder and not a known dataset name{hint}; `translate datasets` lists them")


def build_config(spec: RecipeSpec, request: TrainRequest) -> Any:
    """Defaults < preset < first-class options < --set overrides."""
    config = spec.config_class()
    if request.preset is not None:
        if request.preset not in spec.presets:
            raise ConfigError(
                f"unknown preset {request.preset!r} for {spec.name}; available: {', '.join(spec.presets)}"
            )
        config = apply_overrides(config, dict(spec.presets[request.preset]))
    options = {k: v for k, v in request.options.items() if v is not None}
    if "direction" in options and not any(f.name == "direction" for f in fields(config)):
        raise ConfigError(f"--direction is for paired training (pix2pix); {spec.name} does not take it")
    config = apply_overrides(config, options)
    return apply_overrides(config, request.overrides)


def _default_run_dir(out: Path, stem: str, resume: bool) -> Path:
    # A fresh run never reuses a folder that holds checkpoints: runs/NAME, runs/NAME-2, ...
    candidate, n = out / stem, 1
    while not resume and checkpoint.list_checkpoints(candidate):
        n += 1
        candidate = out / f"{stem}-{n}"
    return candidate


def train(request: TrainRequest, console: Console | None = None) -> Path:
    """Resolve data, config and run folder, train, and return the run folder.

    Launched by torchrun with several processes, this is one rank of a DistributedDataParallel run: every rank
    trains on its share of each step's samples, and rank 0 alone writes and reports.
    """
    launch = init_distributed(request.device)
    together = False  # every rank finished, or stopped after the same step (a stop request, a non-finite loss)
    try:
        if launch is not None and launch.rank != 0:
            console = Console(stderr=True, quiet=True)
        run_dir = _train(request, console or Console(stderr=True))
        together = True
        return run_dir
    except TrainingStopped:
        together = True
        raise
    finally:
        shutdown_distributed(together=together)


def _train(request: TrainRequest, console: Console) -> Path:
    if request.name is not None:
        run_dir = request.out / request.name
    elif request.data is not None:
        data_path = Path(request.data).expanduser()
        stem = data_path.resolve().name if data_path.exists() else request.data
        run_dir = _default_run_dir(request.out, stem or "run", request.resume)
    elif request.domain_a is not None:
        run_dir = _default_run_dir(request.out, request.domain_a.name, request.resume)
    else:
        raise DataError("give DATA (a folder or a known dataset name), or --name of a run to --resume")
    # One trainer per run folder: locked before the checks below read the folder and anything is written into it,
    # until training ends however it ends. Under DDP rank 0 alone writes, so it alone locks.
    main = (launch := launched_distributed()) is None or launch.rank == 0
    with run_lock(run_dir) if main else contextlib.nullcontext():
        return _train_in(request, run_dir, console)


def _train_in(request: TrainRequest, run_dir: Path, console: Console) -> Path:
    """Train in `run_dir`, locked by this process (by rank 0 under DDP)."""
    ckpt = None
    if request.resume:
        path = checkpoint.latest_checkpoint(run_dir)
        if path is None:
            raise DataError(f"{run_dir}: no checkpoint to resume from (checked {run_dir / 'checkpoints'})")
        ckpt = checkpoint.read(path)
        if request.preset:
            raise ConfigError("--resume continues a run with its saved config: drop --preset")
        spec = recipe_of(ckpt)
        saved = _saved_config(spec, ckpt)
        # Changes on resume (a longer run, a lower learning rate) apply from the resumed step on.
        config = apply_overrides(saved, {k: v for k, v in request.options.items() if v is not None})
        config = apply_overrides(config, request.overrides)
        before = dict(describe(saved))
        for key, value in describe(config):
            if value != before[key]:
                console.print(f"changed on resume: {key} {before[key]} → {value}", highlight=False)
        source = ckpt.meta["info"].get("data", {})
        data_arg = request.data or source.get("data")
        domain_a = request.domain_a or _path(source.get("domain_a"))
        domain_b = request.domain_b or _path(source.get("domain_b"))
    else:
        if checkpoint.list_checkpoints(run_dir):
            raise ConfigError(f"{run_dir} already holds a run: add --resume to continue it, or pick another --name")
        spec = get_recipe(request.model) if request.model else _default_recipe(request)
        config = build_config(spec, request)
        data_arg, domain_a, domain_b = request.data, request.domain_a, request.domain_b

    with main_process_first():
        data_path = resolve_data(data_arg, known.collection_for(spec.data), console) if data_arg is not None else None
    data = spec.make_data(config, data_path, domain_a=domain_a, domain_b=domain_b, console=console)
    config = complete_config(spec, config, data)
    engine = Engine(
        request.device,
        precision=request.precision,
        channels_last=request.channels_last,
        compile=request.compile,
        grad_checkpointing=request.grad_checkpointing,
    )
    recipe = spec.build(config, engine)
    info = {
        "data": {"data": data_arg, "domain_a": _str(domain_a), "domain_b": _str(domain_b)},
        "engine": engine.describe(),
    }
    trainer = Trainer(
        recipe, data, engine, run_dir, info=info, console=console, progress=request.progress, phases=spec.phases(config)
    )
    start = trainer.restore(ckpt) if ckpt is not None else 0
    if start >= config.train.steps:
        console.print(f"{run_dir}: already trained for {start} steps; pass --steps N (N > {start}) to go on")
        return run_dir

    if engine.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_stale_temps(run_dir)
        _write_json(run_dir / "config.json", {"recipe": spec.name, "config": to_dict(config), **info})
    verb = f"resuming at step {start}" if start else "training"
    where = f"{engine.device} ×{engine.world_size} processes" if engine.world_size > 1 else str(engine.device)
    batch = f"batch {config.train.batch_size}" + (" per process" if engine.world_size > 1 else "")
    console.print(
        f"{spec.name}: {verb} for {config.train.steps} steps on {data.summary}, {where}, {engine.precision}, "
        f"{config.data.image_size} px, {batch} → {run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    last = trainer.fit(start)
    console.print(f"done: {last}", highlight=False, soft_wrap=True)
    return run_dir


def _default_recipe(request: TrainRequest) -> RecipeSpec:
    """The default for the layout DATA shows; --domain-a/--domain-b and known dataset names are unpaired."""
    data = Path(request.data).expanduser() if request.data else None
    if request.domain_a or request.domain_b or data is None or not data.exists():
        return default_recipe("unpaired", data)
    return default_recipe(detect_layout(data), data)


def _saved_config(spec: RecipeSpec, ckpt: checkpoint.Checkpoint) -> Any:
    """The config a checkpoint holds, checked like any model file's before the run's networks are built: types
    and size bounds, then each generator built on the meta device (no memory) against the file's tensors."""
    try:
        config = from_dict(spec.config_class, ckpt.meta["config"], prefix="config.")
        with torch.device("meta"):
            skeletons = {name: spec.build_generator(config, direction) for direction, name in spec.directions.items()}
    except (ConfigError, TypeError, ValueError) as exc:  # the file's fault, not the command line's: name the file
        raise CheckpointError(f"{ckpt.path}: {exc}") from None
    for name, skeleton in skeletons.items():
        checkpoint.check_fits(ckpt.path, name, skeleton)
    return config


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _str(value: Path | None) -> str | None:
    return str(value.resolve()) if value is not None else None


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(payload, indent=2) + "\n").encode())
