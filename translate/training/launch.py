"""From a `translate train` request to a running Trainer: data, recipe, config, run folder, resume, processes."""

from __future__ import annotations

import contextlib
import json
import shlex
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from translate.augment import choose_policy
from translate.config import (
    apply_file,
    apply_overrides,
    describe,
    read_config_file,
    resolve_key,
    to_dict,
    to_yaml,
)
from translate.core import checkpoint
from translate.core.engine import (
    Engine,
    init_distributed,
    launched_distributed,
    main_process_first,
    shutdown_distributed,
)
from translate.data import known
from translate.data.folders import detect_layout
from translate.errors import ConfigError, DataArgumentError
from translate.files import atomic_write
from translate.recipes import RECIPES, default_recipe, get_recipe, recipe_of
from translate.recipes.base import RecipeSpec, TrainingData
from translate.recipes.restore import checked_config
from translate.training.curves import tensorboard_wanted
from translate.training.finetune import InitSource, init_source, load_weights
from translate.training.lock import run_lock
from translate.training.loop import Trainer, TrainingStopped


def resolve_steps(config: Any, steps: int) -> Any:
    """The config with train.steps set."""
    return replace(config, train=replace(config.train, steps=steps))


def complete_config(spec: RecipeSpec, config: Any, data: TrainingData) -> Any:
    """Fill what the data decides: image channels, and the recipe's default length when steps is 0."""
    config = replace(config, data=replace(config.data, channels=data.channels))
    if data.class_names:
        config = replace(config, class_names=data.class_names)
    if data.cluster_shares:
        config = replace(config, cluster_shares=data.cluster_shares)
    if getattr(config, "augment", None) == "auto":  # generation recipes: augmentation follows the dataset's size
        config = replace(config, augment=choose_policy("auto", data.images))
    if config.train.steps == 0:
        config = resolve_steps(config, spec.default_steps(config, data))
    return config


@dataclass
class TrainRequest:
    """What `translate train` was asked; every field maps to a command-line option."""

    data: str | None = None  # a folder, or a known dataset name
    recipe: str | None = None  # None: the --config file's, --init's, or the default for the data's layout
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
    config_file: Path | None = None  # --config: YAML or TOML, the keys of --set
    init: str | None = None  # --init: start from these weights (a run, checkpoint or model name)
    # Typed values from Python (`translate.train(..., lambda_cycle=5)`), checked as a config file's values are and
    # applied last, like --set.
    values: dict[str, Any] = field(default_factory=dict)
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
    raise DataArgumentError(
        f"{data}: no such folder and not a known dataset name{hint}; `translate datasets` lists them"
    )


def build_config(
    spec: RecipeSpec,
    request: TrainRequest,
    file_values: dict[str, Any] | None = None,
    *,
    base: Any = None,
    console: Console | None = None,
) -> Any:
    """Defaults (or `base`) < preset < first-class options < --config file < --set overrides.

    A file value that replaces what the preset or an option had set is announced on `console`: a file written by
    `translate config` lists every field, so it would otherwise silently undo --steps or --preset.
    """
    config = spec.config_class() if base is None else base
    chosen: dict[str, Any] = {}  # what the preset and the options set, to announce a file value that replaces it
    if request.preset is not None:
        config = apply_overrides(config, dict(preset_values(spec, request.preset)))
        chosen.update({key: f"--preset {request.preset}" for key in spec.presets[request.preset]})
    options = {k: v for k, v in request.options.items() if v is not None}
    if "direction" in options and not any(f.name == "direction" for f in fields(config)):
        raise ConfigError(f"--direction is for paired training (pix2pix); {spec.name} does not take it")
    config = apply_overrides(config, options)
    chosen.update({key: "the command line" for key in options})
    if file_values:
        before = dict(describe(config))
        config = apply_file(config, file_values, request.config_file)
        after = dict(describe(config))
        for key, source in chosen.items():
            path = resolve_key(spec.config_class, key)
            if console is not None and after[path] != before[path]:
                console.print(
                    f"note: {request.config_file} sets {path} = {after[path]}, over {before[path]} from {source} "
                    "(--config comes after the options; --set comes after --config)",
                    highlight=False,
                    soft_wrap=True,
                )
    config = apply_overrides(config, request.overrides)
    return apply_file(config, request.values, "translate.train") if request.values else config


def preset_values(spec: RecipeSpec, preset: str) -> dict[str, object]:
    """A preset's values; an unknown name fails with the recipe's presets."""
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r} for {spec.name}; available: {', '.join(spec.presets)}")
    return spec.presets[preset]


def config_text(recipe: str, preset: str | None = None) -> str:
    """`translate config RECIPE [--preset P]`: every field with its value and meaning, as YAML that --config reads
    back to the same config."""
    spec = get_recipe(recipe)
    defaults = spec.config_class()
    config = apply_overrides(defaults, dict(preset_values(spec, preset))) if preset is not None else defaults
    setting = f", preset {preset}" if preset else ""
    header = [
        f"{spec.name}: {spec.summary}{setting}: every config field, its value and what it means.",
        "Save it, change what you need, and train with: translate train DATA --config FILE.yaml (TOML works too).",
        "Fields at their defaults are commented out; uncomment a line to set it. A set field wins over the options",
        "(--steps, --image-size, ...): defaults < --preset < options < --config < --set.",
        "null means None: the value is worked out as its note says. Keys may also be dotted (optim.lr) or bare (lr).",
    ]
    leading = [("recipe", spec.name, f"the training method: one of {', '.join(RECIPES)}")]
    return to_yaml(config, header, leading, defaults)


def _default_run_dir(out: Path, stem: str, resume: bool, console: Console) -> Path:
    # A fresh run never reuses a folder that holds checkpoints: runs/NAME, runs/NAME-2, ...
    candidate, n = out / stem, 1
    while not resume and checkpoint.list_checkpoints(candidate):
        n += 1
        candidate = out / f"{stem}-{n}"
    if n > 1:  # said first, since the commands printed for the earlier run name the other folder
        console.print(
            f"{out / stem} holds a run already: this one writes to {candidate} "
            f"(--name {stem} --resume continues that one)",
            highlight=False,
            soft_wrap=True,
        )
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
        run_dir = _default_run_dir(request.out, stem or "run", request.resume, console)
    elif request.domain_a is not None:
        run_dir = _default_run_dir(request.out, request.domain_a.name, request.resume, console)
    else:
        raise DataArgumentError("give DATA (a folder or a known dataset name), or --name of a run to --resume")
    if request.resume and request.init:
        raise ConfigError("--init starts a new run from other weights and --resume continues this one: drop one")
    # One trainer per run folder: locked before the checks below read the folder and anything is written into it,
    # until training ends however it ends. Under DDP rank 0 alone writes, so it alone locks.
    main = (launch := launched_distributed()) is None or launch.rank == 0
    with run_lock(run_dir) if main else contextlib.nullcontext():
        return _train_in(request, run_dir, console)


@dataclass(frozen=True)
class _Start:
    """Where a run starts: its recipe and config, the checkpoint it resumes or the weights it starts from, its data."""

    spec: RecipeSpec
    config: Any
    ckpt: checkpoint.Checkpoint | None
    init: InitSource | None
    data: str | None
    domain_a: Path | None
    domain_b: Path | None


def _resumed(request: TrainRequest, run_dir: Path, file: tuple[str | None, dict[str, Any]], console: Console) -> _Start:
    """A run continued from its newest checkpoint: its saved config, with this command's changes."""
    path = checkpoint.latest_checkpoint(run_dir)
    if path is None:
        raise DataArgumentError(f"{run_dir}: no checkpoint to resume from (checked {run_dir / 'checkpoints'})")
    ckpt = checkpoint.read(path)
    if request.preset:
        raise ConfigError("--resume continues a run with its saved config: drop --preset")
    spec = recipe_of(ckpt)
    for named, where in ((request.recipe, "--recipe"), (file[0], f"{request.config_file}'s recipe")):
        if named is not None and named != spec.name:
            raise ConfigError(f"{where} is {named}, but {run_dir} is a {spec.name} run: --resume continues it")
    saved = checked_config(spec, ckpt)
    # Changes on resume (a longer run, a lower learning rate) apply from the resumed step on.
    config = build_config(spec, request, file[1], base=saved, console=console)
    before = dict(describe(saved))
    for key, value in describe(config):
        if value != before[key]:
            console.print(f"changed on resume: {key} {before[key]} → {value}", highlight=False)
    source = ckpt.meta["info"].get("data", {})
    domain_a = request.domain_a or _path(source.get("domain_a"))
    domain_b = request.domain_b or _path(source.get("domain_b"))
    return _Start(spec, config, ckpt, None, request.data or source.get("data"), domain_a, domain_b)


def _fresh(request: TrainRequest, run_dir: Path, file: tuple[str | None, dict[str, Any]], console: Console) -> _Start:
    """A new run: defaults (or the --init source's settings) < preset < options < --config < --set."""
    if checkpoint.list_checkpoints(run_dir):
        raise ConfigError(f"{run_dir} already holds a run: add --resume to continue it, or pick another --name")
    init = init_source(request.init) if request.init else None
    spec = _choose_recipe(request, file[0], init)
    base = init.base_config(spec) if init is not None else None
    config = build_config(spec, request, file[1], base=base, console=console)
    return _Start(spec, config, None, init, request.data, request.domain_a, request.domain_b)


def _train_in(request: TrainRequest, run_dir: Path, console: Console) -> Path:
    """Train in `run_dir`, locked by this process (by rank 0 under DDP)."""
    file = read_config_file(request.config_file) if request.config_file else (None, {})
    plan = (_resumed if request.resume else _fresh)(request, run_dir, file, console)
    spec, config, ckpt, init = plan.spec, plan.config, plan.ckpt, plan.init
    data_arg, domain_a, domain_b = plan.data, plan.domain_a, plan.domain_b
    tensorboard_wanted(config.train.tensorboard)  # train.tensorboard=true without tensorboard: say so up front

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
    if init is not None:  # fresh optimisers; the networks the source holds start from its weights
        info["init"] = _start_from(init, recipe.modules(), spec, console)
    elif ckpt is not None and "init" in ckpt.meta["info"]:
        info["init"] = ckpt.meta["info"]["init"]  # a resumed run still records where it started from
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
    console.print(
        "\n".join(summary(spec, run_dir, last, data_path, data.held_out, tensorboard_wanted(config.train.tensorboard))),
        highlight=False,
        soft_wrap=True,
    )
    return run_dir


def _start_from(
    init: InitSource, modules: dict[str, torch.nn.Module], spec: RecipeSpec, console: Console
) -> dict[str, Any]:
    """Load --init's weights into a fresh recipe's `modules`, say which; returns what the run records about it."""
    loaded = load_weights(init, modules, spec.name)
    fresh = [name for name in modules if name not in loaded]
    console.print(
        f"init: {', '.join(loaded)} from {init.path} (step {init.ckpt.step})"
        + (f"; {', '.join(fresh)} start fresh" if fresh else ""),
        highlight=False,
        soft_wrap=True,
    )
    return init.describe(loaded)


def summary(
    spec: RecipeSpec,
    run_dir: Path,
    last: Path,
    data: Path | None,
    held_out: tuple[Path, Path] | None,
    tensorboard: bool,
) -> list[str]:
    """What a finished run prints: where its outputs are, and the commands that use it (paths filled in where the
    data holds them: held-out folders for a translator, the training images for a generator)."""
    run = shlex.quote(str(run_dir))
    lines = [
        f"done: {last}",
        f"  previews     {run_dir / 'previews'}/",
        f"  curves       {run_dir / 'losses.png'}, {run_dir / 'metrics.jsonl'}",
        *([f"  tensorboard  tensorboard --logdir {shlex.quote(str(run_dir.parent))}"] if tensorboard else []),
        f"  checkpoints  {run_dir / 'checkpoints'}/",
        "next:",
    ]
    if spec.is_generator:
        real = shlex.quote(str(data)) if data is not None else "DIR"
        lines += [f"  translate sample --model {run}", f"  translate evaluate {run} --real {real}"]
    else:
        images, real = (shlex.quote(str(p)) for p in held_out) if held_out else ("IMAGES", "DIR")
        lines += [
            f"  translate apply {images} --model {run}",
            f"  translate evaluate {run} --input {images} --real {real}",
        ]
    return [*lines, f"  translate export {run}"]


def _choose_recipe(request: TrainRequest, file_recipe: str | None, init: InitSource | None) -> RecipeSpec:
    """--recipe, else the config file's, else the --init source's, else the default for DATA's layout."""
    if request.recipe and file_recipe and request.recipe != file_recipe:
        raise ConfigError(
            f"--recipe {request.recipe} and {request.config_file}'s recipe {file_recipe} disagree: drop one"
        )
    named = request.recipe or file_recipe
    if named:
        return get_recipe(named)
    if init is not None:
        return init.spec
    return _default_recipe(request)


def _default_recipe(request: TrainRequest) -> RecipeSpec:
    """The default for the layout DATA shows; --domain-a/--domain-b and known dataset names are unpaired."""
    data = Path(request.data).expanduser() if request.data else None
    if request.domain_a or request.domain_b or data is None or not data.exists():
        return default_recipe("unpaired", data)
    return default_recipe(detect_layout(data), data)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _str(value: Path | None) -> str | None:
    return str(value.resolve()) if value is not None else None


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(payload, indent=2) + "\n").encode())
