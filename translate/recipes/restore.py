"""Rebuilding what a checkpoint holds from the checkpoint alone: its recipe, its config and its generators.

The one place that turns a checkpoint's JSON config back into a typed config (deploy, fine-tuning, resume and the
probe all come here), so a file's faults are reported the same way everywhere: as `CheckpointError`s naming the
file, never as the command line's usage errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate.config import from_dict
from translate.core import checkpoint
from translate.core.ema import ema_name
from translate.description import ModelDescription
from translate.errors import CheckpointError, ConfigError, ModelError, UsageError
from translate.recipes import recipe_of
from translate.recipes.base import RecipeSpec

if TYPE_CHECKING:
    import torch


def load_config(ckpt: checkpoint.Checkpoint, spec: RecipeSpec | None = None) -> Any:
    """The typed config a checkpoint was trained with (types and size bounds checked); `spec`: its recipe when
    the caller has it already."""
    spec = spec or recipe_of(ckpt)
    try:
        return from_dict(spec.config_class, ckpt.meta["config"], prefix="config.")
    except ConfigError as exc:  # the file's fault, not the command line's: name the file
        raise CheckpointError(f"{ckpt.path}: {exc}") from None


def checked_config(spec: RecipeSpec, ckpt: checkpoint.Checkpoint) -> Any:
    """`load_config`, then every generator the config describes built on the meta device (no memory) and compared
    with the file's tensors: a config that claims more than the file has is refused before any memory is spent."""
    import torch

    config = load_config(ckpt, spec)
    try:
        with torch.device("meta"):
            skeletons = {name: spec.build_generator(config, direction) for direction, name in spec.directions.items()}
    except (TypeError, ValueError) as exc:  # a combination of valid values the network refuses
        raise CheckpointError(f"{ckpt.path}: {exc}") from None
    for name, skeleton in skeletons.items():
        checkpoint.check_fits(ckpt.path, name, skeleton)
    return config


def kind_of_checkpoint(path: Path) -> str:
    """ "translator" or "generator": what the checkpoint at `path` holds (read from its header alone)."""
    return recipe_of(checkpoint.read(path)).kind


def load_generator(
    path: Path, direction: str, resolution: int | None = None
) -> tuple[torch.nn.Module, ModelDescription]:
    """Build and load the generator for `direction` from any checkpoint, with no other information; with it, the
    description of what it is (the same one an export writes into its ONNX file). `resolution`: a progressively
    grown generator's output at an earlier resolution than its final one."""
    import torch

    from translate.networks.layers import input_stride

    ckpt = checkpoint.read(path)  # the metadata's structure is checked there
    spec = recipe_of(ckpt)
    check_direction(path, spec, ckpt.meta, direction)
    config = load_config(ckpt, spec)
    name = spec.directions[direction]
    # The network the config describes is built on the meta device first, which allocates nothing, and compared
    # with the tensors the file holds: a config that claims more than the file has is refused before any memory
    # is spent on it. Only then is the real network built (its size is then the file's).
    try:
        with torch.device("meta"):
            skeleton = spec.build_generator(config, direction)
    except (TypeError, ValueError) as exc:  # a combination of valid values the network refuses (channels: null)
        raise CheckpointError(f"{path}: its config does not describe a {spec.name} generator ({exc})") from None
    # The generator's moving average, when the run kept one, is what is deployed (translate.core.ema).
    averaged = ema_name(name) in ckpt.meta.get("modules", [])
    name = ema_name(name) if averaged else name
    checkpoint.check_fits(path, name, skeleton)
    module = spec.build_generator(config, direction)
    checkpoint.load_module(path, name, module)
    if resolution is not None:
        _set_resolution(module, spec.name, resolution)
    official = (ckpt.meta.get("info") or {}).get("official")
    model = ModelDescription(
        recipe=spec.name,
        kind=spec.kind,
        direction=direction,
        channels=config.data.channels or 3,
        image_size=resolution or config.data.image_size,
        stride=input_stride(module),
        inputs=spec.generator_inputs(config) if spec.generator_inputs is not None else (),
        source_step=ckpt.step,
        origin=f"official {official} weights" if official else f"step {ckpt.step}{', EMA' if averaged else ''}",
    )
    return module.eval(), model


def _set_resolution(module: torch.nn.Module, recipe: str, resolution: int) -> None:
    """Make a progressively grown generator draw at `resolution` px; any other generator draws at one size only."""
    sizes = getattr(module, "resolutions", None)
    if sizes is None:
        raise UsageError(f"--resolution is for progressively grown generators (progan); a {recipe} model has one size")
    if resolution not in sizes:
        raise UsageError(f"--resolution {resolution}: this model draws at {', '.join(map(str, sizes))} px")
    module.set_resolution(resolution)


def check_direction(path: Path, spec: RecipeSpec, meta: dict[str, Any], direction: str) -> None:
    """Fail with the fix when the checkpoint has no generator for `direction`."""
    stored = meta.get("modules", list(spec.directions.values()))
    if direction in spec.directions and spec.directions[direction] in stored:
        return
    official = (meta.get("info") or {}).get("official")
    if official and direction == "b2a":  # an official file holds one direction: the other is another model
        raise ModelError(
            f"{path}: the official {official} weights translate one way only (one generator per file); the other "
            "way is another official model (`translate models` lists them)"
        )
    if spec.is_generator:
        raise ModelError(f"{path}: a {spec.name} model generates images; use `translate sample` with it")
    if direction in spec.directions:
        have = [d for d, module in spec.directions.items() if module in stored]
        raise ModelError(f"{path}: holds only the {', '.join(have) or 'no'} generator, not {direction}")
    raise ModelError(f"{path}: a {spec.name} model has directions {', '.join(spec.directions)}, not {direction}")
