"""Typed, frozen configuration shared by every recipe, `--set key=value` overrides and config files.

A recipe's Config is a frozen dataclass composed of the shared parts below plus its own model fields. The whole
config is saved (as JSON) inside every checkpoint, so a run can always be rebuilt from its checkpoint alone.
A config file (`--config`, YAML or TOML) holds the same keys as `--set`; `to_yaml` writes every field of a config
with its meaning, in a form `read_config_file` reads back.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import io
import json
import math
import sys
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from translate.errors import ConfigError

C = TypeVar("C")

# Upper bounds on every size field. A config also arrives from any model file a user passes, and it is built before
# any network, so these keep a file from describing a network no machine holds (the network is then also checked
# against the tensors the file really has). Each is far beyond real use.
MAX_CHANNELS = 4096  # base widths: the papers use 64 (ngf, ndf), and widths grow to 8× that inside the networks
MAX_BLOCKS = 64  # ResNet blocks: the paper uses 6 or 9
MAX_LATENT = 4096  # z: DCGAN uses 100, StyleGAN 512
MAX_IMAGE_SIZE = 4096  # training crops (inference takes any size): the papers train at 256
MAX_LOAD_SIZE = 2 * MAX_IMAGE_SIZE  # the resize before the crop; the paper's jitter is 286 for 256
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841 classes
MAX_BATCH = 65_536  # per process; the papers use 1 to 128
MAX_WORKERS = 256  # DataLoader processes: more than any machine has cores
MAX_UNET_DEPTH = 12  # U-Net levels: log2(MAX_IMAGE_SIZE), where the bottleneck is 1×1; the paper's 256 px use 8
MAX_PATCHGAN_LAYERS = 10  # strided PatchGAN layers: 3 × 2**10 px patches, the most a MAX_IMAGE_SIZE crop fits
MAX_POOL = 1000  # CycleGAN's history of generated images, each kept in memory: the paper keeps 50
MAX_CRITIC = 100  # WGAN critic updates per generator update, each a data batch: the paper uses 5
MAX_EVAL_IMAGES = 100_000  # images per evaluation while training, held in memory: FID's papers use 50,000


def check_size(name: str, value: int | None, low: int, high: int) -> None:
    """Fail unless `low <= value <= high`; None means "resolved elsewhere" and passes."""
    if value is not None and value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    if value is not None and value > high:
        raise ConfigError(f"{name} must be at most {high}, got {value}")


@dataclass(frozen=True)
class DataConfig:
    image_size: int = 256  # training crop (CycleGAN/pix2pix: 256)
    load_size: int | None = None  # resize before the random crop; None: image_size * 286 / 256 (the paper's jitter)
    flip: bool = True  # random horizontal flip (the paper's jitter)
    channels: int | None = None  # 3 = RGB, 1 = grayscale; None: 1 if every training image is grayscale, else 3
    num_workers: int | None = None  # DataLoader worker processes; None: chosen from the CPU count

    def __post_init__(self) -> None:
        check_size("image_size", self.image_size, 16, MAX_IMAGE_SIZE)
        check_size("load_size", self.load_size, self.image_size, MAX_LOAD_SIZE)  # a crop of image_size is taken
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        check_size("num_workers", self.num_workers, 0, MAX_WORKERS)

    @property
    def resolved_load_size(self) -> int:
        # 286/256: the paper's "resize to 286, random crop 256", scaled to other sizes.
        return self.load_size if self.load_size is not None else round(self.image_size * 286 / 256)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4  # Adam's learning rate, as in DCGAN/CycleGAN/pix2pix
    beta1: float = 0.5  # Adam's first-moment decay (DCGAN's 0.5 rather than Adam's 0.9)
    beta2: float = 0.999  # Adam's second-moment decay

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 0  # optimisation steps; 0: the recipe's default for the dataset size
    batch_size: int = 1  # images per step and process (CycleGAN/pix2pix: 1)
    seed: int = 0  # initial weights, data order, jitter and noise
    log_every: int = 50  # metrics.jsonl line, progress-bar losses and the non-finite check
    preview_every: int = 500  # preview grid from fixed held-out inputs
    checkpoint_every: int = 2000  # steps between checkpoints (the last step always saves one)
    keep_checkpoints: int = 3  # older periodic checkpoints are pruned; 0 keeps them all
    tensorboard: bool | None = None  # TensorBoard events in the run folder; None: when tensorboard is installed
    ema_half_life: int = 0  # images; > 0 keeps a moving average of the generators (Karras et al.), used to deploy
    ema_rampup: float = 0.05  # the EMA half-life is at most this times the images seen (StyleGAN2-ADA); 0: none
    eval_every: int = 0  # steps between FID/KID evaluations of the deployed weights (and the last step); 0: none
    eval_features: str = "inception"  # the evaluations' feature network: inception, mnist or an .onnx file
    # FID is biased upward at small n, but equally at every evaluation of a run, so 1,000 images rank its steps (in
    # seconds on a GPU; KID, unbiased, over subsets of 500); figures to publish: `translate evaluate --n 50000`.
    eval_n: int = 1000  # images generated (or translated) per evaluation, and at most as many real ones
    eval_real: str | None = None  # folder of real images to compare with; None: the training (or held-out B) images

    def __post_init__(self) -> None:
        for name in ("batch_size", "log_every", "preview_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.keep_checkpoints < 0:
            raise ConfigError("steps and keep_checkpoints must be >= 0")
        if self.ema_half_life < 0 or not 0 <= self.ema_rampup <= 1:
            raise ConfigError("ema_half_life must be >= 0 (0: no EMA) and ema_rampup in [0, 1]")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0 (0: no evaluation), got {self.eval_every}")
        check_size("eval_n", self.eval_n, 2, MAX_EVAL_IMAGES)  # FID needs 2 images a side
        check_size("batch_size", self.batch_size, 1, MAX_BATCH)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON-ready data."""
    return dataclasses.asdict(config)


def from_dict(cls: type[C], data: Any, prefix: str = "") -> C:
    """Rebuild a (nested) config dataclass from `to_dict` output, such as a checkpoint's JSON.

    Every value is checked against its field's annotation before the dataclass (and its `__post_init__` bounds)
    sees it, so a file's config cannot pass a string, a list or a bool where a number belongs. Unknown keys are an
    error; missing ones take their defaults. Messages name the dotted key, after `prefix` (e.g. "config.").
    """
    where = prefix.rstrip(".") or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(_at(prefix, f"unknown config keys for {cls.__name__}: {', '.join(sorted(unknown))}"))
    kwargs = {key: _typed(value, hints[key], f"{prefix}{key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a bound in __post_init__: say which part of a nested config it is in
        raise ConfigError(_at(prefix, str(exc))) from None


def _at(prefix: str, message: str) -> str:
    return f"{prefix.rstrip('.')}: {message}" if prefix else message


def _typed(value: Any, hint: Any, key: str) -> Any:
    """`value`, from JSON, as the annotation `hint` has it (a list becomes a tuple, an int a float); a ConfigError
    naming `key` when it is not of that type. bool is not an int here, though Python says it is."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, f"{key}.")  # type: ignore[arg-type]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _typed(value, arg, key)
            except ConfigError:
                continue
    elif origin is typing.Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[str, ...]; JSON has lists
        if isinstance(value, list | tuple):
            return tuple(_typed(item, args[0], f"{key}[{i}]") for i, item in enumerate(value))
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float's range
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"{key}: expected a finite float, got {short_repr(value)}")
            return number
    elif hint in (bool, int, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
    else:
        raise TypeError(f"{key}: a config annotation from_dict does not know: {hint!r}")
    raise ConfigError(f"{key}: expected {_describe(hint)}, got {short_repr(value)}")


def _describe(hint: Any) -> str:
    """An annotation in words, for messages: "int or None", "one of 'a', 'b'", "a list of str"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    return "None" if hint is type(None) else getattr(hint, "__name__", repr(hint))


def short_repr(value: Any) -> str:
    """A value for a one-line message: containers by kind, long strings cut."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


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
        path = resolve_key(type(config), key)
        if is_text:
            value = _parse_value(value, paths[path], path)
        config = _replace_path(config, path.split("."), value)
    return config


def resolve_key(cls: type, key: str) -> str:
    """The dotted path `key` names in config class `cls`: itself, or the one path ending in that field name; an
    unknown or ambiguous key fails with the close matches."""
    paths = _leaf_paths(cls)
    by_leaf: dict[str, list[str]] = {}
    for path in paths:
        by_leaf.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    if key in paths:
        return key
    if len(by_leaf.get(key, [])) == 1:
        return by_leaf[key][0]
    if key in by_leaf:
        raise ConfigError(f"{key!r} is ambiguous: use one of {', '.join(by_leaf[key])}")
    hints = difflib.get_close_matches(key, list(dict.fromkeys([*paths, *by_leaf])), n=3)
    hints = list(dict.fromkeys(h.rsplit(".", 1)[-1] if len(by_leaf[h.rsplit(".", 1)[-1]]) == 1 else h for h in hints))
    suggestion = f" (did you mean {', '.join(hints)}?)" if hints else ""
    raise ConfigError(f"unknown config key {key!r}{suggestion}")


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


# ----------------------------------------------------------------------------------------- config files


def read_config_file(path: Path) -> tuple[str | None, dict[str, Any]]:
    """(the recipe it names, if any; its values by key) from a YAML or TOML file (`.toml`: TOML; else YAML, which
    also reads JSON). Sections nest (`optim: {lr: ...}` is the key `optim.lr`), and keys are those of `--set`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = _parse_toml(raw) if path.suffix.lower() == ".toml" else _parse_yaml(raw)
    except ValueError as exc:  # both parsers' errors derive from ValueError here (see below)
        kind = "TOML" if path.suffix.lower() == ".toml" else "YAML"
        raise ConfigError(f"{path}: not valid {kind} ({' '.join(str(exc).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected keys and values (a mapping), got {short_repr(data)}")
    recipe = data.pop("recipe", None)
    if recipe is not None and not isinstance(recipe, str):
        raise ConfigError(f"{path}: recipe must be a recipe name, got {short_repr(recipe)}")
    return recipe, _flatten(data)


def _parse_yaml(raw: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def _parse_toml(raw: bytes) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, before it joined the standard library
        import tomli as tomllib
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc}") from None


def _flatten(data: dict[Any, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def apply_file(config: C, values: dict[str, Any], source: object) -> C:
    """`config` with a config file's values (from `read_config_file`), checked as `--set` checks them: strings
    are parsed by the field's annotation (the same parser, so `none`, `yes` and `2e-4` mean what they mean there),
    other values must already be of the field's type. The whole file is applied at once, so the order of its keys
    does not matter; every message starts with `source` (the file name) and names the key."""
    cls = type(config)
    paths = _leaf_paths(cls)
    data = to_dict(config)
    try:
        for key, value in values.items():
            if value is None and any(p.startswith(f"{key}.") for p in paths):
                continue  # a section whose entries are all commented out (`data:` with nothing under it)
            path = resolve_key(cls, key)
            hint = paths[path]
            typed = _parse_value(value, hint, path) if isinstance(value, str) else _typed(value, hint, path)
            *parents, leaf = path.split(".")
            target = data
            for part in parents:
                target = target[part]
            target[leaf] = typed
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def field_notes(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted path -> the comment written beside the field in its dataclass's source (its meaning), for every leaf.

    The comments are where each default is set and explained, so listings read them rather than repeat them; a
    field without one (or code without its source) gets an empty note.
    """
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's own comment wins over its base's
        if dataclasses.is_dataclass(klass):
            notes.update(_source_comments(klass))
    out: dict[str, str] = {}
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            out.update(field_notes(hint, f"{prefix}{name}."))  # type: ignore[arg-type]
        else:
            out[f"{prefix}{name}"] = notes.get(name, "")
    return out


def _source_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line(s) in the class body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    found = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            found[node.target.id] = next((comments[line] for line in lines if line in comments), "")
    return found


def to_yaml(
    config: Any, header: list[str], leading: list[tuple[str, Any, str]] | None = None, defaults: Any = None
) -> str:
    """Every field of `config` as YAML, after `header` lines (as comments) and `leading` (key, value, note) entries;
    each field's note is a comment beside it. Fields equal to `defaults`' are written commented out: such a file
    sets only what differs from the defaults, so it does not override options (--steps) with default values, and
    uncommenting a line sets it. `read_config_file` and `apply_file` read it back to the same config."""
    notes = field_notes(type(config))
    hints = _leaf_paths(type(config))
    lines = [f"# {line}" if line else "#" for line in header]

    def entry(indent: str, key: str, value: Any, note: str, live: bool = True) -> None:
        text = f"{indent}{'' if live else '# '}{key}: {_yaml_scalar(value)}"
        lines.append(f"{text:<42}  # {note}" if note else text)

    for key, value, note in leading or []:
        entry("", key, value, note)

    def walk(node: Any, default: Any, prefix: str, indent: str) -> None:
        for item in dataclasses.fields(node):
            value, path = getattr(node, item.name), f"{prefix}{item.name}"
            usual = getattr(default, item.name) if default is not None else None
            if dataclasses.is_dataclass(value):
                lines.append(f"{indent}{item.name}:")
                walk(value, usual, f"{path}.", indent + "  ")
                continue
            note = notes.get(path, "")
            if typing.get_origin(hints[path]) is typing.Literal or _literal_arms(hints[path]):
                choices = ", ".join(map(str, _literal_arms(hints[path]) or typing.get_args(hints[path])))
                note = f"{note}; one of {choices}" if note else f"one of {choices}"
            entry(indent, item.name, value, note, live=default is None or value != usual)

    walk(config, defaults, "", "")
    return "\n".join(lines) + "\n"


def _literal_arms(hint: Any) -> tuple[Any, ...]:
    """The choices of an optional Literal (`Literal["a", "b"] | None`), else ()."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is typing.Literal:
                return typing.get_args(arg)
    return ()


def _yaml_scalar(value: Any) -> str:
    """A value as YAML that reads back as itself (floats keep a decimal point, which YAML 1.1 needs to see one)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0{e}{exponent}" if e and "." not in mantissa else text
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml_scalar(item) for item in value) + "]"
    if isinstance(value, str):
        plain = value[:1].isalpha() and all(c.isalnum() or c in "_-." for c in value)
        if plain and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML string
    return str(value)


# Words YAML 1.1 (PyYAML) reads as booleans or null rather than as strings.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "none", "~"})
