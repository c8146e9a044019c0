"""Complete, atomic, self-describing checkpoints in one safetensors file.

Every tensor of the run (network weights, optimiser moments, RNG states, image pools) is a named tensor; every
other value (recipe name, config, step, optimiser hyper-parameters, version) is JSON in the file's metadata. So a
checkpoint alone rebuilds a generator with no flags, and loading never unpickles anything.

Tensor names: `<module>.<param>` for networks (G_AB.layers.1.weight), `optim.<name>.<index>.<key>` for optimiser
state, `rng.<name>` and `extra.<name>` for the rest.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as serialize
from torch import Tensor, nn

from translate import __version__, files
from translate.config import short_repr
from translate.errors import CheckpointError

FORMAT = "translate-checkpoint"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")
# Leftovers of saves that were killed: the shared writer's temps, and those of older versions (mkstemp's
# `.step_*.tmp`, safetensors' own `step_*.safetensors.tmp*`).
_STALE = re.compile(rf"{files.TEMP_NAME.pattern}|\.step_.*\.tmp|step_\d+\.safetensors\.tmp.*")
_STALE_RUN = re.compile(rf"{files.TEMP_NAME.pattern}|\.config\.json\.tmp")  # the latter: older versions
# Weights stored in another floating dtype than the network's float32 (a file saved or edited elsewhere): float16
# and bfloat16 widen to float32 exactly, and float64 rounds to it (2**-24 relative, far below what trained weights
# resolve; the networks compute in float32 anyway). Each conversion is announced on stderr, never silent. Values
# beyond float32's range, any other dtype (integers, float8, complex) and NaN or infinity are refused.
_WIDENED = (torch.float16, torch.bfloat16, torch.float64)


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
    """The checkpoint's metadata (no tensors are loaded), its structure checked: every later reader may rely on
    the types of recipe, step, config, modules, optimizers and info."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = (handle.metadata() or {}).get("translate")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file, but not a translate checkpoint (no metadata)")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise CheckpointError(f"{path}: its translate metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its translate metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a translate checkpoint (format {short_repr(meta.get('format'))})")
    version = meta.get("format_version", 0)
    _require(path, "format_version", _is_int(version), "an integer", version)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this translate ({__version__}) reads; "
            "upgrade gan-translate"
        )
    _check_meta(path, meta)
    return Checkpoint(path=path, meta=meta)


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    for key in ("recipe", "config", "step"):
        if key not in meta:
            raise CheckpointError(f"{path}: its metadata has no {key!r}; not a complete translate checkpoint")
    _require(path, "recipe", isinstance(meta["recipe"], str) and meta["recipe"], "a recipe name", meta["recipe"])
    step = meta["step"]
    _require(path, "step", _is_int(step) and step >= 0, "an integer >= 0", step)
    _require(path, "config", isinstance(meta["config"], dict), "an object", meta["config"])
    modules = meta.get("modules", [])
    _require(path, "modules", _strings(modules), "a list of names", modules)
    optimizers = meta.get("optimizers", {})
    _require(path, "optimizers", isinstance(optimizers, dict), "an object", optimizers)
    for name, value in optimizers.items():
        fits = isinstance(value, dict) and isinstance(value.get("param_groups"), list)
        fits = fits and all(isinstance(g, dict) for g in value["param_groups"])
        fits = fits and isinstance(value.get("scalars"), dict)
        _require(path, f"optimizers.{name}", fits, "an object with param_groups and scalars", value)
    info = meta.get("info", {})
    _require(path, "info", isinstance(info, dict), "an object", info)
    for key, kind, test in (
        ("official", "a name", str),
        ("source_sha256", "a hex string", str),
        ("data", "an object", dict),
        ("scalers", "an object", dict),
    ):
        if key in info:
            _require(path, f"info.{key}", isinstance(info[key], test), kind, info[key])
    samples = info.get("samples", 0)  # the sample counter a resumed run continues from
    _require(path, "info.samples", _is_int(samples) and samples >= 0, "an integer >= 0", samples)


def _require(path: Path, key: str, ok: object, expected: str, value: object) -> None:
    if not ok:
        raise CheckpointError(f"{path}: metadata {key} must be {expected}, got {short_repr(value)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON's true is not a step


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_fits(path: Path, name: str, module: nn.Module) -> None:
    """Fail unless the file's tensors of network `name` have exactly the names and shapes of `module`'s state.

    Only the file's header is read, and `module` may be built on the meta device (which allocates nothing), so
    this is the check to make before building a network that a file's config describes: a config claiming more
    than the file holds is refused before anything is allocated. (safetensors checks that the header's shapes
    match the file's bytes, so the file's size bounds what it can claim.)
    """
    prefix = f"{name}."
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        stored = {
            key[len(prefix) :]: tuple(handle.get_slice(key).get_shape())
            for key in handle.keys()  # noqa: SIM118 (not iterable)
            if key.startswith(prefix)
        }
    if not stored:
        raise CheckpointError(f"{path}: holds no network named {name!r}")
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    missing, unexpected = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
    if missing or unexpected:
        differences = [
            f"{len(keys)} {what} tensor(s): {_some(keys)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise CheckpointError(
            f"{path}: the file's {name} does not fit the network its config describes; {'; '.join(differences)}"
        )
    want, have = sum(map(math.prod, expected.values())), sum(map(math.prod, stored.values()))
    if want != have:
        raise CheckpointError(
            f"{path}: its config describes a {name} of {want:,} values but the file holds {have:,}; "
            "the config or the weights were altered"
        )
    for key, shape in expected.items():
        if stored[key] != shape:
            raise CheckpointError(
                f"{path}: {name}.{key} has shape {list(stored[key])} in the file, the network expects {list(shape)}"
            )


def differences(path: Path, name: str, module: nn.Module) -> list[str]:
    """How the file's network `name` differs from `module`, tensor by tensor, from the header alone: e.g.
    "G.down.6.weight is missing in the file" or "G.up.0.weight: [8, 16, 4, 4] in the file, [16, 32, 4, 4] here".
    Empty when names and shapes are exactly the module's."""
    prefix = f"{name}."
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        stored = {
            key[len(prefix) :]: list(handle.get_slice(key).get_shape())
            for key in handle.keys()  # noqa: SIM118 (not iterable)
            if key.startswith(prefix)
        }
    expected = {key: list(value.shape) for key, value in module.state_dict().items()}
    out = [
        f"{name}.{key}: {stored[key]} in the file, {shape} here"
        for key, shape in expected.items()
        if key in stored and stored[key] != shape
    ]
    out += [f"{name}.{key} is missing in the file" for key in expected if key not in stored]
    out += [f"{name}.{key} is in the file, not in this network" for key in stored if key not in expected]
    return out


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def load_tensors(path: Path, prefix: str = "", device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Tensors whose name starts with `prefix`, with the prefix removed."""
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        return {key[len(prefix) :]: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}  # noqa: SIM118 (not iterable)


def load_module(path: Path, name: str, module: nn.Module) -> None:
    """Load the weights of network `name` from a checkpoint into `module` (strict), converting or refusing what is
    not in the network's own dtypes (see `_WIDENED`) and refusing non-finite values."""
    state = load_tensors(path, f"{name}.")
    if not state:
        raise CheckpointError(f"{path}: holds no network named {name!r}")
    expected = module.state_dict()
    converted: dict[torch.dtype, int] = {}
    for key, value in state.items():
        where = f"{path}: {name}.{key}"
        if value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{where} holds {bad} non-finite value(s) (NaN or infinity); the weights are damaged")
        want = expected[key].dtype if key in expected else value.dtype  # unknown keys: load_state_dict names them
        if value.dtype == want:
            continue
        if want != torch.float32 or value.dtype not in _WIDENED:
            raise CheckpointError(f"{where} is stored as {_dtype(value.dtype)}; the network needs {_dtype(want)}")
        state[key] = value.to(torch.float32)
        if not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{where} holds values beyond float32's range (largest {value.abs().max():.3g})")
        converted[value.dtype] = converted.get(value.dtype, 0) + 1
    for dtype, count in converted.items():
        print(
            f"note: {path}: {count} tensor(s) of {name} stored as {_dtype(dtype)}, converted to float32",
            file=sys.stderr,
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights of {name!r} do not fit the network ({exc})") from None


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


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
        if name not in checkpoint.meta.get("optimizers", {}):
            raise CheckpointError(f"{checkpoint.path}: holds no optimiser state for {name!r}; it cannot be resumed")
        try:
            _restore_optimizer(checkpoint, name, optimizer)
        except (ValueError, IndexError, KeyError) as exc:  # indices, names or groups that are not this optimiser's
            raise CheckpointError(
                f"{checkpoint.path}: the optimiser state of {name!r} does not fit this run "
                f"({type(exc).__name__}: {exc})"
            ) from None
    return load_tensors(checkpoint.path, "extra."), load_tensors(checkpoint.path, "rng.")


def _restore_optimizer(checkpoint: Checkpoint, name: str, optimizer: torch.optim.Optimizer) -> None:
    """Rebuild `optimizer`'s state dict from the file's tensors and scalars; a file whose state is not this
    optimiser's raises ValueError, IndexError or KeyError (`restore` names the file)."""
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
