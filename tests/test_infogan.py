"""InfoGAN (Chen et al. 2016): the codes, Q's information term, resume, ONNX with named code inputs, and the
`--code` / `--walk` / `--range` options of `sample` and `interpolate`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import make_shapes
from PIL import Image, ImageSequence
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.backends.onnxruntime import create_session
from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy.models import load_sampler
from translate.deploy.sampling import feeds_for, latents
from translate.errors import ConfigError
from translate.imageio import to_uint8
from translate.networks.infogan import InfoGANDiscriminator, InfoGANGenerator
from translate.recipes import RECIPES
from translate.recipes.infogan import parse_codes
from translate.training.launch import complete_config
from translate.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
SPEC = RECIPES["infogan"]
TILE = 32 + 2  # a 32 px sample and its 2 px padding in a grid


def _cli(*args: str | Path) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


def _duration(gif: Path) -> int:
    """A GIF's length in ms (writers merge identical neighbouring frames, adding up their durations)."""
    return sum(frame.info["duration"] for frame in ImageSequence.Iterator(Image.open(gif)))


def _recipe(data: Path, steps: int, **overrides: object):
    settings = {**SPEC.presets["tiny"], "train.steps": steps, "num_workers": 0, "log_every": 1}
    settings |= {"preview_every": 1000, "checkpoint_every": 1000, **overrides}
    config = apply_overrides(SPEC.config_class(), settings)
    training = SPEC.make_data(config, data)
    config = complete_config(SPEC, config, training)
    engine = Engine("cpu")
    return SPEC.build(config, engine), training, engine


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root / "circles", 8, shape="circle", seed=1)  # sub-folders are not classes to InfoGAN
    make_shapes(root / "squares", 8, shape="square", seed=2)
    return root


@pytest.fixture(scope="module")
def run(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny InfoGAN run folder (RGB, cat10,cont2), trained 2 steps through the command line."""
    out = tmp_path_factory.mktemp("runs")
    settings = ["--preset", "tiny", "--device", "cpu", "--steps", "2", "--set", "num_workers=0"]
    _cli("train", shapes, "--recipe", "infogan", "--out", out, "--name", "info", *settings)
    return out / "info"


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "infogan.onnx"
    assert "parity fp32" in _cli("export", run, "--out", path)
    return path


# ----------------------------------------------------------------------------------------- codes and networks


def test_codes_parse_and_bad_ones_are_refused() -> None:
    assert parse_codes("cat10,cont2") == ((10,), 2)
    assert parse_codes("cont1") == ((), 1) and parse_codes("cat3, cat4, cont1, cont2") == ((3, 4), 3)
    config = SPEC.config_class()
    assert (config.latent_dim, config.lambda_info, config.optim.lr, config.generator_lr) == (62, 1.0, 2e-4, 1e-3)
    assert (config.codes, config.continuous_std, config.optim.beta1) == ("cat10,cont2", "fixed", 0.5)
    for bad, message in (("cat1", "2 to 1024 values"), ("dog3", "cannot read"), ("", "cannot read")):
        with pytest.raises(ConfigError, match=message):
            apply_overrides(config, [f"codes={bad}"])


@pytest.mark.parametrize(("size", "channels"), [(32, 1), (64, 3), (128, 1)])
def test_networks_follow_size_channels_and_codes(size: int, channels: int) -> None:
    G = InfoGANGenerator(8, channels, size, categorical=(4, 3), continuous=1, base_channels=4).eval()
    assert (G.cat_names, G.cont_names) == (("cat1", "cat2"), ("c1",))
    z = torch.randn(2, 8)
    codes = {"cat1": torch.tensor([0, 3]), "cat2": torch.tensor([1, 2]), "c1": torch.tensor([-1.0, 1.0])}
    x = G(z, **codes)
    assert x.shape == (2, channels, size, size)
    D = InfoGANDiscriminator(channels, size, categorical=(4, 3), continuous=1, learned_std=True, base_channels=4)
    scores, q = D(x)
    assert scores.shape == (2,) and q.shape == (2, 4 + 3 + 2)
    logits, mean, log_std = D.posterior(q)
    assert [t.shape[1] for t in logits] == [4, 3] and mean.shape == log_std.shape == (2, 1)
    with pytest.raises(ValueError, match="takes the codes"):
        G(z, cat1=codes["cat1"])


def test_changing_a_code_changes_the_output(shapes: Path) -> None:
    recipe, _, _ = _recipe(shapes, steps=1)
    G = recipe.G.eval()
    z = torch.randn(3, recipe.config.latent_dim)
    base = {"cat": torch.tensor([1, 1, 1]), "c1": torch.zeros(3), "c2": torch.zeros(3)}
    with torch.no_grad():
        reference = G(z, **base)
        assert torch.equal(reference, G(z, **base))  # deterministic
        for name, value in (("cat", torch.tensor([7, 7, 7])), ("c1", torch.ones(3)), ("c2", -torch.ones(3))):
            changed = G(z, **{**base, name: value})
            # An untrained G's outputs are small (weights N(0, 0.02)): compare with their own scale.
            assert (changed - reference).abs().amax(dim=(1, 2, 3)).min() > 0.1 * reference.abs().max(), name


# ----------------------------------------------------------------------------------------- training


def test_q_learns_the_categorical_code_below_chance(shapes: Path, tmp_path: Path) -> None:
    """On a short run, −log Q(cat | G(z, c)) falls well below log 10, the loss of a Q that knows nothing."""
    recipe, training, engine = _recipe(shapes, steps=40, **{"train.batch_size": 16})
    Trainer(recipe, training, engine, tmp_path / "run", progress=False).fit()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    q_cat = [entry["Q_cat"] for entry in logged if "Q_cat" in entry]
    assert len(q_cat) == 40 and q_cat[0] > math.log(10) - 0.3
    assert np.mean(q_cat[-5:]) < math.log(10) - 0.3, q_cat
    assert "Q_cont" in logged[-1] and np.isfinite(logged[-1]["Q_cont"])


def test_one_step_updates_g_d_and_q_and_resume_is_bit_identical(shapes: Path, tmp_path: Path) -> None:
    straight, training, engine = _recipe(shapes, steps=4)
    before = {name: p.detach().clone() for name, p in straight.D.named_parameters() if name.startswith("q.")}
    last = Trainer(straight, training, engine, tmp_path / "a", progress=False).fit()
    assert all(not torch.equal(p, dict(straight.D.named_parameters())[n]) for n, p in before.items())
    saved = checkpoint.read(last).meta
    assert {"G", "D", "G_ema"} <= set(saved["modules"]) and saved["config"]["codes"] == "cat10,cont2"

    first, training, engine = _recipe(shapes, steps=4)
    Trainer(first, training, engine, tmp_path / "b", progress=False).fit(stop_at=2)
    resumed, training, engine = _recipe(shapes, steps=4)
    trainer = Trainer(resumed, training, engine, tmp_path / "b", progress=False)
    end = trainer.fit(trainer.restore(checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "b"))))
    a, b = load_file(str(last)), load_file(str(end))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_preview_has_one_row_per_category(shapes: Path) -> None:
    recipe, training, _ = _recipe(shapes, steps=1, codes="cat4,cont1")
    rows = recipe.preview(training.preview)
    assert [label for label, _ in rows] == ["cat=0", "cat=1", "cat=2", "cat=3"]
    assert all(images.shape == (8, 3, 32, 32) for _, images in rows)
    assert torch.equal(training.preview["z"][:8], training.preview["z"][8:16])  # a column keeps its z


# ----------------------------------------------------------------------------------------- export and ONNX


def test_export_has_named_code_inputs_and_matches_pytorch(run: Path, exported: Path) -> None:
    props = {p.key: p.value for p in onnx.load(exported).metadata_props}
    assert props["format_version"] == "3" and props["recipe"] == "infogan"
    inputs = json.loads(props["inputs"])
    assert [(i["name"], i["kind"]) for i in inputs] == [
        ("z", "normal"),
        ("cat", "categorical"),
        ("c1", "uniform"),
        ("c2", "uniform"),
    ]
    session, _ = create_session(exported, "cpu")
    declared = {i.name: i.type for i in session.get_inputs()}
    assert declared == {"z": "tensor(float)", "cat": "tensor(int64)", "c1": "tensor(float)", "c2": "tensor(float)"}
    rng = np.random.default_rng(3)
    feeds = {
        "z": rng.standard_normal((5, 8), dtype=np.float32),
        "cat": np.array([0, 9, 3, 3, 5], np.int64),
        "c1": np.array([-2, -1, 0, 1, 2], np.float32),
        "c2": rng.uniform(-1, 1, 5).astype(np.float32),
    }
    reference = load_sampler(str(run), "cpu")
    assert np.abs(session.run(None, feeds)[0] - reference(feeds)).max() <= 1e-4


def test_sampling_through_onnx_matches_pytorch(run: Path, exported: Path, tmp_path: Path) -> None:
    commands = [
        ["sample", "--n", "20", "--seed", "2"],
        ["sample", "--n", "4", "--code", "cat=3", "--code", "c1=0.5"],
        ["interpolate", "--walk", "c1", "--steps", "3"],
        ["interpolate", "--points", "2", "--steps", "2", "--code", "cat=1"],
    ]
    for i, command in enumerate(commands):
        outputs = []
        for model in (run, exported):
            out = tmp_path / f"{i}_{Path(model).suffix or 'run'}.png"
            _cli(*command, "--model", model, "--out", out, "--device", "cpu")
            outputs.append(_pixels(out))
        assert outputs[0].shape == outputs[1].shape and np.abs(outputs[0] - outputs[1]).max() <= 1, command


def test_onnx_codes_run_without_torch(exported: Path, tmp_path: Path) -> None:
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from translate.cli import app
from typer.testing import CliRunner
runner = CliRunner()
model = {str(exported)!r}
for args in (
    ["sample", "--model", model, "--n", "3", "--code", "cat=2", "--out", {str(tmp_path / "s.png")!r}],
    ["interpolate", "--model", model, "--walk", "c2", "--range", "-1,1", "--steps", "3",
     "--out", {str(tmp_path / "w.gif")!r}],
):
    result = runner.invoke(app, [*args, "--backend", "onnxruntime"])
    assert result.exit_code == 0, (args, result.output)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout + done.stderr
    assert _duration(tmp_path / "w.gif") == 3 * 80


# ----------------------------------------------------------------------------------------- the command line


def test_sample_fixes_codes_and_spreads_the_category_over_rows(run: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    _cli("sample", "--model", run, "--n", "20", "--out", grid)
    assert Image.open(grid).size == (2 * TILE + 2, 10 * TILE + 2)  # one row per category, 2 columns

    sampler = load_sampler(str(run), "cpu")
    folder = tmp_path / "fixed"
    _cli("sample", "--model", run, "--n", "3", "--code", "cat=3", "--code", "c1=0.5", "--out", f"{folder}/")
    images = [_pixels(path) for path in sorted(folder.iterdir())]
    assert len(images) == 3 and np.abs(images[0] - images[1]).max() > 0  # z and c2 still vary
    feeds = feeds_for(sampler.model, latents(3, 8, 0), None, 0, {"cat": 3, "c1": 0.5})
    assert feeds["cat"].tolist() == [3, 3, 3] and feeds["c1"].tolist() == [0.5] * 3
    assert feeds["c2"].dtype == np.float32 and len(set(feeds["c2"].tolist())) == 3
    assert np.abs(images[0] - to_uint8(sampler(feeds))[0]).max() <= 1


def test_walk_draws_one_row_per_category(run: Path, tmp_path: Path) -> None:
    figure = tmp_path / "walk.png"
    _cli("interpolate", "--model", run, "--walk", "c1", "--steps", "5", "--out", figure)
    pixels = _pixels(figure)
    assert pixels.shape[:2] == (10 * TILE + 2, 5 * TILE + 2)
    cells = [pixels[2 : 2 + 32, 2 + j * TILE : 2 + j * TILE + 32] for j in range(5)]
    assert np.abs(cells[0] - cells[-1]).max() > 0  # the sweep changes the picture along the row

    one_row = tmp_path / "row.png"
    _cli(
        "interpolate",
        "--model",
        run,
        "--walk",
        "c2",
        "--range=-1,1",
        "--code",
        "cat=4",
        "--steps",
        "4",
        "--out",
        one_row,
    )
    assert Image.open(one_row).size == (4 * TILE + 2, TILE + 2)
    gif = tmp_path / "walk.gif"
    _cli("interpolate", "--model", run, "--walk", "c1", "--range", "-2,2", "--steps", "6", "--out", gif)
    assert _duration(gif) == 6 * 80


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN checkpoint: a generator without codes."""
    from translate.config import to_dict

    spec = RECIPES["dcgan"]
    config = apply_overrides(spec.config_class(), {**spec.presets["tiny"], "data.channels": 1, "train.steps": 1})
    path = tmp_path_factory.mktemp("dcgan") / "dcgan.safetensors"
    modules = spec.build(config, Engine("cpu")).modules()
    checkpoint.save(path, recipe="dcgan", config=to_dict(config), step=1, modules=modules)
    return path


def test_code_errors_are_one_line_usage_errors(run: Path, dcgan: Path, tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "x.png")]
    cases = {
        ("sample", "--code", "kat=3"): "--code kat: no such code (did you mean cat?)",
        ("sample", "--code", "cat=10"): "takes a whole number from 0 to 9",
        ("sample", "--code", "cat=two"): "takes a whole number from 0 to 9",
        ("sample", "--code", "c1=9"): "takes a number from -4 to 4",
        ("sample", "--code", "c1=nan"): "takes a number from -4 to 4",
        ("sample", "--code", "c1"): "write NAME=VALUE",
        ("sample", "--code", "c1=1", "--code", "c1=0"): "given twice",
        ("interpolate", "--walk", "cat"): "a categorical code",
        ("interpolate", "--walk", "c3"): "no such code",
        ("interpolate", "--walk", "c1", "--code", "c1=0"): "exclude each other",
        ("interpolate", "--walk", "c1", "--range", "2,-2"): "LOW < HIGH",
        ("interpolate", "--walk", "c1", "--range", "-9,9"): "from -4 to 4",
        ("interpolate", "--range", "-1,1"): "give --walk NAME too",
        ("interpolate", "--walk", "c1", "--labels", "1,2"): "takes no --labels",
    }
    for args, expected in cases.items():
        result = RUNNER.invoke(app, [*args, "--model", str(run), *out])
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.output
        assert expected in _flat(result.output), (args, result.output)
    for args in (("sample", "--code", "cat=1"), ("interpolate", "--walk", "c1")):
        result = RUNNER.invoke(app, [*args, "--model", str(dcgan), *out])
        assert result.exit_code == 2 and "needs a model with latent codes" in _flat(result.output), result.output


def test_evaluate_reports_each_category_value_against_the_classifier(run: Path, shapes: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "r.json"
    args = ["--real", shapes, "--features", "mnist", "--n", "40", "--device", "cpu", "--json", report_path]
    output = _flat(_cli("evaluate", run, *args))
    found = json.loads(report_path.read_text())["codes"]["cat"]
    assert sum(row["n"] for row in found["values"].values()) == 40  # every sample under the value it was drawn with
    assert set(found["values"]) <= {str(v) for v in range(10)}
    majority = sum(row["share"] * row["n"] for row in found["values"].values())
    assert found["purity"] == pytest.approx(majority / 40) and 0.1 <= found["purity"] <= 1
    assert 1 <= found["distinct"] <= len(found["values"]) and "code cat: purity" in output
