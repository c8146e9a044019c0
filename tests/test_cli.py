"""The command line as a whole: exit codes, --help, config files and `translate config`, what a run ends with."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner, Result

from translate.cli import Direction, Precision, Walk, app
from translate.config import apply_file, describe, read_config_file
from translate.core.engine import PRECISIONS
from translate.errors import ConfigError
from translate.recipes import RECIPES
from translate.training.launch import TrainRequest, build_config, config_text

TINY = ["--preset", "tiny", "--set", "num_workers=0", "--set", "pool_size=3"]


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / "a.png")
    return folder


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "no/such/folder"], "no such folder and not a known dataset name"),
        (["train", "horse2zebr"], "did you mean horse2zebra"),
        (["train", "{data}", "--device", "gpu"], "unknown device 'gpu'"),
        (["sample", "--device", "gpu"], "unknown device 'gpu'"),
        (["train", "{data}", "--set", "lr=fast"], "optim.lr expects float"),
        (["train", "{data}", "--set", "lambda_cycel=3"], "did you mean lambda_cycle"),
        (["train", "{data}", "--config", "{bad_key}"], "bad_key.yaml: unknown config key 'lambda_cycel'"),
        (["train", "{data}", "--config", "{bad_value}"], "bad_value.toml: optim.lr expects float, got 'fast'"),
        (["train", "{data}", "--config", "{nowhere}"], "no such file"),
        (["train", "{data}", "--recipe", "cyclgan"], "unknown recipe 'cyclgan' (did you mean cyclegan"),
        (["train", "--resume", "--name", "nothing"], "no checkpoint to resume from"),
        (["apply", "{images}", "--model", "mnist-dcgan"], "use it with `translate sample`"),
        (["apply", "{images}", "--model", "mnist-dcgan.onnx"], "use it with `translate sample`"),
        (["sample", "--model", "ming2kai"], "use `translate apply` with it"),
        (["export", "no/such/run"], "no such run folder or model file"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], expected: str, unpaired_data: Path, images: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad_key.yaml").write_text("lambda_cycel: 3\n")
    (tmp_path / "bad_value.toml").write_text('[optim]\nlr = "fast"\n')
    paths = {"data": unpaired_data, "images": images, "nowhere": tmp_path / "nowhere.yaml"}
    paths |= {"bad_key": tmp_path / "bad_key.yaml", "bad_value": tmp_path / "bad_value.toml"}
    args = [a.format(**paths) for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "runs")]
    if args[0] in ("apply", "sample"):
        args += ["--out", str(tmp_path / "out")]
    result = _cli(*args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not list((tmp_path / "runs").glob("*/checkpoints"))


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--precision", "fp64"],
        ["train", "--direction", "sideways"],
        ["apply", "x", "--model", "m", "--direction", "sideways"],
        ["interpolate", "--method", "cubic"],
        ["export", "m", "--direction", "up"],
        ["train", "--no-such-option"],
    ],
)
def test_command_line_usage_errors_exit_2(args: list[str]) -> None:
    result = _cli(*args)
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and "Traceback" not in result.output


def test_help_lists_choices_and_shows_flags_as_flags() -> None:
    train = _cli("train", "--help").output
    assert "auto|fp32|bf16|fp16" in train and "a2b|b2a" in train
    assert "<bool>" not in train and "--resume " in train and "--init MODEL" in train
    assert "--model" not in train  # train's method is --recipe; --model is kept only as a hidden alias
    assert "slerp|lerp" in _cli("interpolate", "--help").output
    assert "a2b|b2a" in _cli("apply", "--help").output
    root = _cli("--help").output
    assert "--install-completion" in root and "config" in root
    # The command line's choices are the library's.
    assert {p.value for p in Precision} == set(PRECISIONS)
    assert {d.value for d in Direction} == {"a2b", "b2a"} and {w.value for w in Walk} == {"slerp", "lerp"}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_translate_config_round_trips_every_preset(recipe: str, tmp_path: Path) -> None:
    spec = RECIPES[recipe]
    for preset in (None, *spec.presets):
        result = _cli("config", recipe, *(["--preset", preset] if preset else []))
        assert result.exit_code == 0, result.output
        saved = tmp_path / f"{recipe}-{preset}.yaml"
        saved.write_text(result.stdout)
        named, values = read_config_file(saved)
        request = TrainRequest(preset=preset)
        assert named == recipe
        assert apply_file(spec.config_class(), values, saved) == build_config(spec, request)
    listing = config_text(recipe)
    assert "# train:" not in listing and "\ntrain:" in listing  # sections stay, so uncommented lines stay in them
    assert "optimisation steps" in listing  # with each field's meaning
    for path, _ in describe(spec.config_class()):  # every field, commented out at its default
        assert f"# {path.rsplit('.', 1)[-1]}: " in listing, path


def test_config_file_precedence_and_formats(tmp_path: Path) -> None:
    spec = RECIPES["cyclegan"]
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("train:\n  steps: 200\n  log_every: 7\nlambda_cycle: 5\ndata: {flip: no}\nlr: 2e-5\n")
    toml_file = tmp_path / "run.toml"
    toml_file.write_text(
        "lambda_cycle = 5\n[train]\nsteps = 200\nlog_every = 7\n[data]\nflip = false\n[optim]\nlr = 2e-5\n"
    )
    for file in (yaml_file, toml_file):
        _, values = read_config_file(file)
        request = TrainRequest(preset="quick", options={"train.steps": 100}, config_file=file)
        notes = Console(record=True, width=300)
        config = build_config(spec, request, values, console=notes)
        # defaults < preset (quick: 600 steps, log_every 20) < options (--steps 100) < --config < --set
        assert (config.train.steps, config.train.log_every, config.data.image_size) == (200, 7, 64)
        assert config.lambda_cycle == 5.0 and config.data.flip is False and config.optim.lr == 2e-5
        text = notes.export_text()
        assert f"{file} sets train.steps = 200, over 100 from the command line" in text
        assert f"{file} sets train.log_every = 7, over 20 from --preset quick" in text
        request.overrides = ["train.steps=300"]
        assert build_config(spec, request, values).train.steps == 300

    (tmp_path / "bad.yaml").write_text("optim:\n  lr: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optim\.lr: expected float, got a list of 2"):
        apply_file(spec.config_class(), read_config_file(tmp_path / "bad.yaml")[1], tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("optim: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        read_config_file(tmp_path / "broken.yaml")


def test_a_run_from_a_config_file_ends_with_its_commands(unpaired_data: Path, tmp_path: Path) -> None:
    saved = tmp_path / "tiny.yaml"
    saved.write_text(_cli("config", "cyclegan", "--preset", "tiny").stdout.replace("# pool_size: 50", "pool_size: 3"))
    out = tmp_path / "runs"
    args = ["train", unpaired_data, "--config", saved, "--out", out, "--steps", "1", "--set", "num_workers=0"]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    config = (out / "shapes" / "config.json").read_text()
    assert '"pool_size": 3' in config and '"image_size": 32' in config and '"generator_channels": 8' in config

    second = _cli(*args)  # the same command again writes to a new folder, and says so first
    assert second.exit_code == 0, second.output
    lines = second.output.splitlines()
    assert lines[0].startswith(f"{out / 'shapes'} holds a run already: this one writes to {out / 'shapes-2'}")
    run = out / "shapes-2"
    test_a, test_b = unpaired_data / "testA", unpaired_data / "testB"
    for expected in (
        f"  previews     {run / 'previews'}/",
        f"  curves       {run / 'losses.png'}, {run / 'metrics.jsonl'}",
        f"  checkpoints  {run / 'checkpoints'}/",
        f"  translate apply {test_a} --model {run}",
        f"  translate evaluate {run} --input {test_a} --real {test_b}",
        f"  translate export {run}",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, second.output)
    assert (run / "losses.png").is_file()


def test_train_keeps_model_as_an_alias_of_recipe(unpaired_data: Path, tmp_path: Path) -> None:
    result = _cli("train", unpaired_data, "--model", "cyclgan", "--out", tmp_path)
    assert result.exit_code == 2 and "--model is now --recipe" in result.output and "unknown recipe" in result.output
    both = _cli("train", unpaired_data, "--model", "dcgan", "--recipe", "cgan", "--out", tmp_path)
    assert both.exit_code == 2 and "disagree" in both.output


@pytest.mark.parametrize("command", [["train"], ["config"]])
def test_help_lists_every_registered_recipe_and_preset(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name, spec in RECIPES.items():
        assert f"{name} ({spec.data})" in text
        assert f"{name} {'|'.join(spec.presets)}" in text


def test_backend_and_format_choices_come_from_the_registry() -> None:
    from translate.backends import backend_choices, export_formats

    apply_help = " ".join(CliRunner().invoke(app, ["apply", "--help"], env={"COLUMNS": "400"}).output.split())
    assert f"--backend <{'|'.join(backend_choices())}>" in apply_help
    export_help = " ".join(CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "400"}).output.split())
    assert f"--format <{'|'.join(export_formats())}>" in export_help
