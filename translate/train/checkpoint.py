"""Complete, atomic, self-describing checkpoints in one safetensors file.

Every tensor of the run (network weights, optimiser moments, RNG states, image pools) is a named tensor; every
other value (recipe name, config, step, optimiser hyper-parameters, version) is JSON in the file's metadata. So a
checkpoint alone rebuilds a generator with no flags, and loading never unpickles anything.

Tensor names: `<module>.<param>` for networks (G_AB.layers.1.weight), `optim.<name>.<index>.<key>` for optimiser
state, `rng.<name>` and `extra.<name>` for the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as serialize
from torch import Tensor, nn

from translate import __version__, files
from translate.errors import CheckpointError

FORMAT = "translate-checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")
# Leftovers of saves that were killed: the shared writer's temps, and those of older versions (mkstemp's
# `.step_*.tmp`, safetensors' own `step_*.safetensors.tmp*`).
_STALE = re.compile(rf"{files.TEMP_NAME.pattern}|\.step_.*\.tmp|step_\d+\.safetensors\.tmp.*")
_STALE_RUN = re.compile(rf"{files.TEMP_NAME.pattern}|\.config\.json\.tmp")  # the latter: older versions


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    meta: dict[str, Any]  # format, version, recipe, config, step, optimizers, data

    @property
    def recipe(self) -> str:
        return self.meta["recipe"]

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}.safetensors"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete what killed writes left in a run folder: temps in checkpoints/ (also older versions'), previews/ and
    the folder itself (config.json). Called by the run's own process when it starts or resumes."""
    return [
        *files.remove_stale_temps(run_dir / "checkpoints", _STALE),
        *files.remove_stale_temps(run_dir, _STALE_RUN),
        *files.remove_stale_temps(run_dir / "previews"),
    ]


def _optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{name}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save(
    path: Path,
    *,
    recipe: str,
    config: dict[str, Any],
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    extra: dict[str, Tensor] | None = None,
    rng: dict[str, Tensor] | None = None,
    info: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (`files.atomic_writer`), first deleting what killed saves left in its folder.

    `modules` must be the plain (unwrapped) networks. `info` is extra JSON (e.g. where the data came from).
    """
    tensors: dict[str, Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value
    optim_meta = {}
    for name, optimizer in (optimizers or {}).items():
        optim_tensors, optim_meta[name] = _optimizer_tensors(name, optimizer)
        tensors.update(optim_tensors)
    tensors.update({f"extra.{k}": v for k, v in (extra or {}).items()})
    tensors.update({f"rng.{k}": v for k, v in (rng or {}).items()})
    # safetensors wants contiguous CPU tensors that own their memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "translate_version": __version__,
        "recipe": recipe,
        "config": config,
        "step": step,
        "modules": sorted(modules),
        "optimizers": optim_meta,
        "info": info or {},
    }
    data = serialize(tensors, metadata={"translate": json.dumps(meta)})
    files.remove_stale_temps(path.parent, _STALE)
    files.atomic_write(path, data)


def read(path: Path) -> Checkpoint:
    """The checkpoint's metadata (no tensors are loaded)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = (handle.metadata() or {}).get("translate")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file, but not a translate checkpoint (no metadata)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta.get('format_version')} is newer than this "
            f"translate ({__version__}) reads; upgrade gan-translate"
        )
    return Checkpoint(path=path, meta=meta)


def load_tensors(path: Path, prefix: str = "", device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Tensors whose name starts with `prefix`, with the prefix removed."""
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        return {key[len(prefix) :]: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}  # noqa: SIM118 (not iterable)


def load_module(path: Path, name: str, module: nn.Module) -> None:
    """Load the weights of network `name` from a checkpoint into `module` (strict)."""
    state = load_tensors(path, f"{name}.")
    if not state:
        raise CheckpointError(f"{path}: holds no network named {name!r}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights of {name!r} do not fit the network ({exc})") from None


def restore(
    checkpoint: Checkpoint,
    *,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Load networks and optimisers in place; returns (extra tensors, rng tensors) for the caller to apply."""
    for name, module in modules.items():
        load_module(checkpoint.path, name, module)
    for name, optimizer in optimizers.items():
        meta = checkpoint.meta["optimizers"][name]
        tensors = load_tensors(checkpoint.path, f"optim.{name}.")
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            index, field = key.split(".", 1)
            state.setdefault(int(index), {})[field] = value
        for key, value in meta["scalars"].items():
            index, field = key.split(".", 1)
            state.setdefault(int(index), {})[field] = value
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for index, values in state.items():
            for field, value in values.items():
                if isinstance(value, Tensor) and value.shape == params[index].shape:
                    # Moments take their parameter's device and memory format (channels_last): the fused kernels
                    # require matching strides.
                    values[field] = torch.empty_like(params[index]).copy_(value)
        groups = meta["param_groups"]
        for saved, current in zip(groups, optimizer.param_groups, strict=True):
            for key in ("fused", "foreach", "capturable"):  # the implementation is this run's, not the saved one's
                if key in current:
                    saved[key] = current[key]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    return load_tensors(checkpoint.path, "extra."), load_tensors(checkpoint.path, "rng.")
