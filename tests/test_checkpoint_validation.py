"""Hostile model files: every way a checkpoint's metadata or tensors can lie ends in one line naming the file,
quickly and without allocating what the file claims (sizes, types, structure, non-finite or foreign-dtype weights).

Each file starts from a real tiny checkpoint and is rewritten with safetensors directly, as an attacker would.
"""

from __future__ import annotations

import copy
import json
import re
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner, Result

from translate.cli import app
from translate.config import apply_overrides, from_dict, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.errors import CheckpointError, ConfigError
from translate.recipes import RECIPES
from translate.recipes.cyclegan import CycleGANConfig
from translate.recipes.generation import GeneratorConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
HEADROOM = 1 << 30  # what a rejected file may make the process allocate: far below what the hostile files claim
FAST = 10.0  # seconds; a rejection reads the header and builds nothing real, so it takes well under one

Meta = dict[str, Any]
Tensors = dict[str, torch.Tensor]


def _tiny_checkpoint(folder: Path, recipe: str) -> Path:
    """An untrained checkpoint of `recipe` at its tiny preset: the honest file every hostile one is made from."""
    spec = RECIPES[recipe]
    overrides = {**spec.presets["tiny"], "data.channels": 1 if spec.is_generator else 3, "train.steps": 1}
    config = apply_overrides(spec.config_class(), overrides)
    if spec.data == "classes":
        config = apply_overrides(config, {"class_names": ("cat", "dog")})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        modules = spec.build(config, Engine("cpu")).modules()
    path = folder / f"{recipe}.safetensors"
    checkpoint.save(path, recipe=recipe, config=to_dict(config), step=1, modules=modules)
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("originals")
    return {recipe: _tiny_checkpoint(folder, recipe) for recipe in ("cyclegan", "pix2pix", "dcgan", "cgan")}


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


def _rewrite(source: Path, target: Path, change: Callable[[Meta, Tensors], str | None]) -> Path:
    """A copy of `source` whose metadata and tensors `change` edited in place (or whose raw metadata it returns)."""
    meta = copy.deepcopy(checkpoint.read(source).meta)
    tensors = load_file(str(source))
    raw = change(meta, tensors)
    save_file(tensors, str(target), metadata={"translate": raw if raw is not None else json.dumps(meta)})
    return target


def _set(path: str, value: object) -> Callable[[Meta, Tensors], None]:
    """Set a dotted metadata path (`config.data.image_size`) to `value`."""

    def change(meta: Meta, tensors: Tensors) -> None:
        *parents, last = path.split(".")
        node = meta
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _drop(key: str) -> Callable[[Meta, Tensors], None]:
    def change(meta: Meta, tensors: Tensors) -> None:
        del meta[key]

    return change


def _raw(text: str) -> Callable[[Meta, Tensors], str]:
    return lambda meta, tensors: text


def _first_weight(tensors: Tensors, prefix: str) -> str:
    return next(k for k, v in tensors.items() if k.startswith(prefix) and v.dim() == 4)


def _tensor(change: Callable[[torch.Tensor], torch.Tensor], prefix: str = "G.") -> Callable[[Meta, Tensors], None]:
    """Replace the generator's first convolution weight by `change(weight)`."""

    def edit(meta: Meta, tensors: Tensors) -> None:
        key = _first_weight(tensors, prefix)
        tensors[key] = change(tensors[key]).contiguous()

    return edit


def _remove_tensor(meta: Meta, tensors: Tensors) -> None:
    del tensors[_first_weight(tensors, "G_AB.")]


def _extra_tensor(meta: Meta, tensors: Tensors) -> None:
    tensors["G_AB.smuggled.weight"] = torch.zeros(3)


def _nan(weight: torch.Tensor) -> torch.Tensor:
    weight = weight.clone()
    weight.view(-1)[3] = float("nan")
    return weight


def _inf(weight: torch.Tensor) -> torch.Tensor:
    weight = weight.clone()
    weight.view(-1)[0] = float("-inf")
    return weight


# (id, recipe, change, what the message must mention)
HOSTILE: list[tuple[str, str, Callable[[Meta, Tensors], str | None], str]] = [
    # Sizes: bounded by the config, then compared with what the file really holds.
    ("huge-num-blocks", "cyclegan", _set("config.num_blocks", 10_000_000), "num_blocks"),
    ("huge-channels", "cyclegan", _set("config.generator_channels", 200_000), "generator_channels"),
    ("huge-image-size", "cyclegan", _set("config.data.image_size", 1 << 30), "image_size"),
    ("huge-depth", "pix2pix", _set("config.depth", 1_000_000_000), "depth"),
    ("huge-patchgan", "pix2pix", _set("config.discriminator_layers", 1_000_000_000), "discriminator_layers"),
    ("huge-latent", "dcgan", _set("config.latent_dim", 100_000_000), "latent_dim"),
    ("many-classes", "cgan", _set("config.class_names", [f"c{i}" for i in range(100_001)]), "class_names"),
    # Within every bound, but describing a network of billions of parameters that the file does not hold.
    ("wide-within-bounds", "dcgan", _set("config.generator_channels", 4096), "holds"),
    ("blocks-within-bounds", "cyclegan", _set("config.num_blocks", 64), "missing"),
    # Tensors that do not match the network the config describes.
    ("missing-tensor", "cyclegan", _remove_tensor, "missing"),
    ("extra-tensor", "cyclegan", _extra_tensor, "smuggled"),
    (
        "reshaped-tensor",
        "cyclegan",
        _tensor(lambda w: w.reshape(w.shape[1], w.shape[0], *w.shape[2:]), "G_AB."),
        "shape",
    ),
    ("grown-tensor", "pix2pix", _tensor(lambda w: torch.cat([w, w])), "holds"),
    # Missing or mistyped metadata.
    ("no-recipe", "cyclegan", _drop("recipe"), "recipe"),
    ("recipe-number", "cyclegan", _set("recipe", 7), "recipe"),
    ("no-config", "pix2pix", _drop("config"), "config"),
    ("config-list", "cyclegan", _set("config", [1, 2, 3]), "config"),
    ("data-list", "cyclegan", _set("config.data", ["image_size", 32]), "config.data"),
    ("string-for-int", "cyclegan", _set("config.data.image_size", "big"), "config.data.image_size: expected int"),
    ("bool-for-int", "dcgan", _set("config.latent_dim", True), "config.latent_dim: expected int"),
    ("float-for-int", "cyclegan", _set("config.num_blocks", 1.5), "config.num_blocks: expected int"),
    ("string-for-float", "pix2pix", _set("config.dropout", "half"), "config.dropout: expected float"),
    ("nan-float", "pix2pix", _set("config.lambda_l1", float("nan")), "config.lambda_l1"),
    ("bad-choice", "cyclegan", _set("config.norm", "group"), "config.norm"),
    ("class-name-number", "cgan", _set("config.class_names", ["cat", 3]), "config.class_names"),
    ("unknown-key", "dcgan", _set("config.bogus", 1), "bogus"),
    ("channels-null", "cyclegan", _set("config.data.channels", None), "config"),
    ("step-string", "cyclegan", _set("step", "many"), "step"),
    ("step-negative", "dcgan", _set("step", -5), "step"),
    ("no-step", "dcgan", _drop("step"), "step"),
    ("modules-string", "cyclegan", _set("modules", "G_AB"), "modules"),
    ("info-list", "cyclegan", _set("info", ["official"]), "info"),
    ("official-number", "cyclegan", _set("info", {"official": 5}), "info.official"),
    ("samples-string", "dcgan", _set("info", {"samples": "lots"}), "info.samples"),
    ("optimizers-list", "dcgan", _set("optimizers", [1]), "optimizers"),
    ("version-string", "dcgan", _set("format_version", "one"), "format_version"),
    ("json-list", "cyclegan", _raw("[1, 2, 3]"), "not a JSON object"),
    ("json-broken", "dcgan", _raw('{"recipe": '), "JSON"),
    # Weights the network cannot use as they are.
    ("nan-weights", "cyclegan", _tensor(_nan, "G_AB."), "non-finite"),
    ("inf-weights", "dcgan", _tensor(_inf), "non-finite"),
    ("integer-weights", "pix2pix", _tensor(lambda w: w.to(torch.int32)), "int32"),
    ("float64-overflow", "dcgan", _tensor(lambda w: w.double() * 1e300), "float32"),
]


def _commands(recipe: str, model: Path, photo: Path, out: Path) -> list[list[str]]:
    """Every command that reads `model`: apply or sample, and export."""
    use = ["sample", "--model", model, "--n", "2", "--out", out / "s.png", "--device", "cpu"]
    if not RECIPES[recipe].is_generator:
        use = ["apply", photo, "--model", model, "--out", out / "a", "--device", "cpu"]
    return [[str(a) for a in use], ["export", str(model), "--out", str(out / "m.onnx")]]


@contextmanager
def _memory_headroom(limit: int) -> Iterator[None]:
    """Cap the address space at its current size + `limit`: an allocation the file asks for fails at once instead
    of exhausting the machine, so "nothing big was allocated" is checked, not hoped for (Linux only)."""
    status = Path("/proc/self/status")
    found = re.search(r"VmSize:\s+(\d+) kB", status.read_text()) if status.exists() else None
    if found is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = int(found.group(1)) * 1024 + limit
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _run(args: list[str]) -> tuple[Result, float]:
    start = time.perf_counter()
    with _memory_headroom(HEADROOM):
        result = RUNNER.invoke(app, args)
    return result, time.perf_counter() - start


@pytest.mark.parametrize(("recipe", "change", "mention"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_file_is_one_line_naming_it(
    recipe: str,
    change: Callable[[Meta, Tensors], str | None],
    mention: str,
    originals: dict[str, Path],
    photo: Path,
    tmp_path: Path,
) -> None:
    model = _rewrite(originals[recipe], tmp_path / "hostile.safetensors", change)
    for args in _commands(recipe, model, photo, tmp_path):
        result, seconds = _run(args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1, (args[0], result.output)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args[0], result.output)
        assert str(model) in lines[0] and mention in lines[0], (args[0], lines[0])
        assert "Traceback" not in result.output and "Error:" not in lines[0], lines[0]  # no exception class names
        assert seconds < FAST, (args[0], seconds)
        assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "s.png").exists()


def _resumable(folder: Path) -> tuple[Path, dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
    """A dcgan checkpoint with optimiser state after one step, and a fresh recipe's networks and optimisers."""
    spec = RECIPES["dcgan"]
    config = apply_overrides(spec.config_class(), {**spec.presets["tiny"], "data.channels": 1, "train.steps": 2})
    recipe = spec.build(config, Engine("cpu"))
    recipe.train_step({"image": torch.rand(4, 1, 32, 32) * 2 - 1}, 0)
    path = folder / "resumable.safetensors"
    meta = {"recipe": "dcgan", "config": to_dict(config), "step": 1}
    checkpoint.save(path, **meta, modules=recipe.modules(), optimizers=recipe.optimizers())
    fresh = spec.build(config, Engine("cpu"))
    return path, fresh.modules(), fresh.optimizers()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop("optimizers"), "holds no optimiser state for 'G'"),
        (_set("optimizers.D.scalars", {"first.step": 1}), "optimiser state of 'D' does not fit"),
        (lambda meta, tensors: meta["optimizers"]["G"]["param_groups"].append({}), "optimiser state of 'G' does"),
    ],
    ids=["none", "bad-index", "extra-group"],
)
def test_resume_refuses_optimiser_state_that_does_not_fit(
    change: Callable[[Meta, Tensors], str | None], message: str, tmp_path: Path
) -> None:
    source, modules, optimizers = _resumable(tmp_path)
    hostile = _rewrite(source, tmp_path / "hostile.safetensors", change)
    checkpoint.restore(checkpoint.read(source), modules=modules, optimizers=optimizers)  # the original resumes
    with pytest.raises(CheckpointError, match=re.escape(str(hostile))) as caught:
        checkpoint.restore(checkpoint.read(hostile), modules=modules, optimizers=optimizers)
    assert message in str(caught.value)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_converted_with_a_note(
    dtype: torch.dtype, originals: dict[str, Path], photo: Path, tmp_path: Path
) -> None:
    def cast(meta: Meta, tensors: Tensors) -> None:
        for key, value in tensors.items():
            if key.startswith("G_AB.") and value.is_floating_point():
                tensors[key] = value.to(dtype)

    model = _rewrite(originals["cyclegan"], tmp_path / "cast.safetensors", cast)
    result = RUNNER.invoke(app, ["apply", str(photo), "--model", str(model), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    note = next(line for line in result.output.splitlines() if line.startswith("note: "))
    assert str(model) in note and str(dtype).removeprefix("torch.") in note and "float32" in note
    assert (tmp_path / "a" / photo.name).is_file()


def test_converted_weights_equal_the_originals_within_their_precision(
    originals: dict[str, Path], tmp_path: Path
) -> None:
    from translate.recipes.restore import load_generator

    def widen(meta: Meta, tensors: Tensors) -> None:
        tensors.update({k: v.double() for k, v in tensors.items() if k.startswith("G.") and v.is_floating_point()})

    model = _rewrite(originals["dcgan"], tmp_path / "f64.safetensors", widen)
    converted, _ = load_generator(model, "generate")
    original, _ = load_generator(originals["dcgan"], "generate")
    for (key, a), b in zip(converted.state_dict().items(), original.state_dict().values(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), key  # float32 → float64 → float32 is exact


def test_from_dict_checks_every_value_against_its_annotation() -> None:
    good = to_dict(CycleGANConfig())
    assert from_dict(CycleGANConfig, good) == CycleGANConfig()
    assert from_dict(CycleGANConfig, {**good, "lambda_cycle": 10}).lambda_cycle == 10.0  # an int is a float
    names = from_dict(GeneratorConfig, {**to_dict(GeneratorConfig()), "class_names": ["a", "b"]}).class_names
    assert names == ("a", "b")  # JSON's list is the annotation's tuple
    for change, message in [
        ({"num_blocks": "9"}, r"^num_blocks: expected int or None, got '9'$"),
        ({"num_blocks": False}, "num_blocks: expected int or None, got False"),
        ({"data": {**good["data"], "flip": 1}}, "data.flip: expected bool, got 1"),
        ({"data": 3}, "data: expected an object"),
        ({"gan_loss": "wgan"}, "gan_loss: expected one of 'lsgan', 'vanilla', got 'wgan'"),
        ({"optim": {**good["optim"], "lr": float("inf")}}, "optim.lr: expected a finite float"),
        ({"num_blocks": 65}, "num_blocks must be"),
    ]:
        with pytest.raises(ConfigError, match=message):
            from_dict(CycleGANConfig, {**good, **change})
    with pytest.raises(ConfigError, match=r"^config\.data\.image_size: expected int, got 'big'$"):
        from_dict(CycleGANConfig, {**good, "data": {**good["data"], "image_size": "big"}}, prefix="config.")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generator_channels=4097", "generator_channels"),
        ("discriminator_channels=0", "discriminator_channels"),
        ("num_blocks=65", "num_blocks"),
        ("image_size=8192", "image_size"),
        ("load_size=100000", "load_size"),
        ("batch_size=1000000", "batch_size"),
        ("discriminator_layers=40", "discriminator_layers"),
    ],
)
def test_size_fields_are_bounded(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(CycleGANConfig(), [override])


def test_generator_and_pix2pix_sizes_are_bounded() -> None:
    spec = RECIPES["pix2pix"]
    for override, message in [("depth=13", "depth"), ("generator_channels=5000", "generator_channels")]:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(spec.config_class(), [override])
    for recipe in ("dcgan", "wgan-gp", "cgan"):
        config = RECIPES[recipe].config_class()
        for override, message in [("latent_dim=4097", "latent_dim"), ("discriminator_channels=9999", "channels")]:
            with pytest.raises(ConfigError, match=message):
                apply_overrides(config, [override])
    with pytest.raises(ConfigError, match="n_critic"):
        apply_overrides(RECIPES["wgan-gp"].config_class(), ["n_critic=1000"])
