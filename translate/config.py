"""Typed, frozen configuration shared by every recipe, and `--set key=value` overrides.

A recipe's Config is a frozen dataclass composed of the shared parts below plus its own model fields. The whole
config is saved (as JSON) inside every checkpoint, so a run can always be rebuilt from its checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from translate.errors import ConfigError

C = TypeVar("C")


@dataclass(frozen=True)
class DataConfig:
    image_size: int = 256  # training crop (CycleGAN/pix2pix: 256)
    load_size: int | None = None  # resize before the random crop; None: image_size * 286 / 256 (the paper's jitter)
    flip: bool = True  # random horizontal flip (the paper's jitter)
    channels: int | None = None  # 3 = RGB, 1 = grayscale; None: 1 if every training image is grayscale, else 3
    num_workers: int | None = None  # DataLoader worker processes; None: chosen from the CPU count

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ConfigError(f"image_size must be at least 16, got {self.image_size}")
        if self.load_size is not None and self.load_size < self.image_size:
            raise ConfigError(f"load_size ({self.load_size}) must be >= image_size ({self.image_size})")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")

    @property
    def resolved_load_size(self) -> int:
        # 286/256: the paper's "resize to 286, random crop 256", scaled to other sizes.
        return self.load_size if self.load_size is not None else round(self.image_size * 286 / 256)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4  # Adam, as in DCGAN/CycleGAN/pix2pix
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 0  # optimisation steps; 0: the recipe's default for the dataset size
    batch_size: int = 1  # CycleGAN/pix2pix: 1
    seed: int = 0
    log_every: int = 50  # metrics.jsonl line, progress-bar losses and the non-finite check
    preview_every: int = 500  # preview grid from fixed held-out inputs
    checkpoint_every: int = 2000
    keep_checkpoints: int = 3  # older periodic checkpoints are pruned; 0 keeps them all

    def __post_init__(self) -> None:
        for name in ("batch_size", "log_every", "preview_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.keep_checkpoints < 0:
            raise ConfigError("steps and keep_checkpoints must be >= 0")


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON-ready data."""
    return dataclasses.asdict(config)


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a (nested) config dataclass from `to_dict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config keys for {cls.__name__}: {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        kwargs[key] = from_dict(hint, value) if dataclasses.is_dataclass(hint) else value
    return cls(**kwargs)


def _leaf_paths(cls: type, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> type annotation for every leaf field of a nested config class."""
    out: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(cls).items():
        path = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            out.update(_leaf_paths(hint, path + "."))  # type: ignore[arg-type]
        else:
            out[path] = hint
    return out


def _parse_value(text: str, hint: Any, key: str) -> Any:
    """Parse `text` by the field's annotation (never eval)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse_value(text, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if typing.get_origin(hint) is typing.Literal:
        if text not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}, got {text!r}")
        return text
    if hint is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true or false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(f"{key} expects {hint.__name__}, got {text!r}") from None
    if hint is str:
        return text
    raise ConfigError(f"{key} cannot be set from the command line")


def apply_overrides(config: C, overrides: dict[str, Any] | list[str]) -> C:
    """Return `config` with overrides applied.

    `overrides` is either `["key=value", ...]` strings (parsed by annotation) or a dict of already-typed values.
    A key is a dotted path (`optim.lr`) or a bare field name when that name is unique (`lr`).
    """
    paths = _leaf_paths(type(config))
    by_leaf: dict[str, list[str]] = {}
    for path in paths:
        by_leaf.setdefault(path.rsplit(".", 1)[-1], []).append(path)

    items: list[tuple[str, Any, bool]] = []
    if isinstance(overrides, dict):
        items = [(k, v, False) for k, v in overrides.items()]
    else:
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            items.append((key.strip(), value.strip(), True))

    for key, value, is_text in items:
        if key in paths:
            path = key
        elif len(by_leaf.get(key, [])) == 1:
            path = by_leaf[key][0]
        elif key in by_leaf:
            raise ConfigError(f"{key!r} is ambiguous: use one of {', '.join(by_leaf[key])}")
        else:
            hints = difflib.get_close_matches(key, list(dict.fromkeys([*paths, *by_leaf])), n=3)
            hints = list(
                dict.fromkeys(h.rsplit(".", 1)[-1] if len(by_leaf[h.rsplit(".", 1)[-1]]) == 1 else h for h in hints)
            )
            suggestion = f" (did you mean {', '.join(hints)}?)" if hints else ""
            raise ConfigError(f"unknown config key {key!r}{suggestion}")
        if is_text:
            value = _parse_value(value, paths[path], path)
        config = _replace_path(config, path.split("."), value)
    return config


def _replace_path(config: Any, parts: list[str], value: Any) -> Any:
    if len(parts) == 1:
        return dataclasses.replace(config, **{parts[0]: value})
    child = getattr(config, parts[0])
    return dataclasses.replace(config, **{parts[0]: _replace_path(child, parts[1:], value)})


def describe(config: Any) -> list[tuple[str, Any]]:
    """(dotted key, value) for every leaf, for `--help`-style listings and logs."""
    flat = []
    for path in _leaf_paths(type(config)):
        value: Any = config
        for part in path.split("."):
            value = getattr(value, part)
        flat.append((path, value))
    return flat
