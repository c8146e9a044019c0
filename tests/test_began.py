"""BEGAN (Berthelot et al. 2017): its networks, the equilibrium k_t and M_global recomputed from the log, the
learning-rate rule when M_global stalls, exact resume with k_t, and export parity. Tiny, on the CPU."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_shapes
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.backends.onnxruntime import create_session
from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.data.folders import to_model_range
from translate.errors import ConfigError
from translate.networks.began import BEGANDiscriminator, BEGANGenerator
from translate.recipes import RECIPES
from translate.recipes.began import StallDecay, update_k
from translate.recipes.restore import load_generator
from translate.training.curves import panels, read_metrics
from translate.training.launch import complete_config
from translate.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEC = RECIPES["began"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, 8, shape="circle", seed=3)
    return root


def _recipe(data: Path, steps: int = 6, **overrides: object):
    settings = {**SPEC.presets["tiny"], "train.steps": steps, "num_workers": 0, "log_every": 1}
    settings |= {"preview_every": 1000, "checkpoint_every": 3, "tensorboard": False, **overrides}
    config = apply_overrides(SPEC.config_class(), settings)
    training = SPEC.make_data(config, data)
    config = complete_config(SPEC, config, training)
    engine = Engine("cpu", precision="fp32")
    return SPEC.build(config, engine), training, engine


def _train(data: Path, run: Path, steps: int = 6, **overrides: object) -> tuple[Path, list[dict]]:
    recipe, training, engine = _recipe(data, steps, **overrides)
    last = Trainer(recipe, training, engine, run, progress=False).fit()
    return last, read_metrics(run / "metrics.jsonl")


# ------------------------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_follow_the_paper(size: int, channels: int) -> None:
    G = BEGANGenerator(16, channels, size, width=4)
    D = BEGANDiscriminator(channels, size, width=4, embedding_dim=16)
    x = G(torch.randn(2, 16))
    assert x.shape == D(x).shape == (2, channels, size, size)  # D is an auto-encoder: it returns an image
    layers = [*G.modules(), *D.modules()]
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.ConvTranspose2d) for m in layers)
    assert not any(isinstance(m, torch.nn.Dropout) for m in layers)
    assert all(m.kernel_size == (3, 3) for m in layers if isinstance(m, torch.nn.Conv2d))
    upsampling = [m for m in G.modules() if isinstance(m, torch.nn.Upsample)]
    assert len(upsampling) == int(math.log2(size // 8)) and all(m.mode == "nearest" for m in upsampling)
    assert sum(isinstance(m, torch.nn.ELU) for m in G.modules()) == 2 * (len(upsampling) + 1)
    # The encoder's filters grow by n at each sub-sampling; the embedding is h.
    strided = [m for m in D.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert [m.out_channels for m in strided] == [4 * (i + 2) for i in range(len(upsampling))]
    assert D.encoder.embed.out_features == 16


def test_config_defaults_overrides_and_refusals() -> None:
    config = SPEC.config_class()
    assert (config.gamma, config.lambda_k, config.latent_dim, config.data.image_size) == (0.5, 0.001, 64, 64)
    assert (config.optim.lr, config.optim.beta1, config.optim.beta2) == (1e-4, 0.5, 0.999)
    assert apply_overrides(config, ["gamma=0.7"]).gamma == 0.7
    assert apply_overrides(config, dict(SPEC.presets["mnist"])).data.image_size == 32
    for bad in (["gamma=0"], ["gamma=1.5"], ["augment=ada"], ["feature_matching=true"], ["lr_window=0"]):
        with pytest.raises(ConfigError):
            apply_overrides(config, bad)


# ------------------------------------------------------------------------------------- equilibrium and M


def test_update_k_clamps_to_the_unit_interval() -> None:
    k = torch.tensor(0.0005)
    assert float(update_k(k, torch.tensor(0.1), torch.tensor(0.9), 0.5, 0.001)) == 0.0  # would go below 0
    assert float(update_k(torch.tensor(0.9999), torch.tensor(0.9), torch.tensor(0.0), 0.5, 0.001)) == 1.0
    assert float(update_k(k, torch.tensor(0.4), torch.tensor(0.1), 0.5, 0.001)) == pytest.approx(0.0006)


@pytest.mark.parametrize(("gamma", "lambda_k"), [(0.5, 0.001), (0.7, 5.0)])  # 5.0: k_t reaches the clamp at 1
def test_k_t_and_m_global_follow_their_rules_in_the_log(shapes: Path, tmp_path: Path, gamma, lambda_k) -> None:
    _, records = _train(shapes, tmp_path / "run", gamma=gamma, lambda_k=lambda_k)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    k = torch.zeros(())  # k_0 = 0
    for r in records:  # float32, as the recipe computes (log_every=1: each record is one step's values)
        real, fake = torch.tensor(r["L_real"]), torch.tensor(r["L_fake"])
        assert r["D"] == float(real - k * fake)  # L_D = L(x) − k_t·L(G(z)), with the k_t before this step's update
        k = torch.clamp(k + lambda_k * (gamma * real - fake), 0.0, 1.0)
        assert r["k_t"] == float(k) and 0.0 <= r["k_t"] <= 1.0
        assert r["M_global"] == float(real + (gamma * real - fake).abs())
    if lambda_k > 1:
        assert records[-1]["k_t"] == 1.0
    else:
        assert 0.0 < records[-1]["k_t"] < 0.01


def test_m_global_is_plotted_beside_the_losses(shapes: Path, tmp_path: Path) -> None:
    _train(shapes, tmp_path / "run", steps=2, preview_every=2)
    assert (tmp_path / "run" / "losses.png").is_file()
    layout = panels(["G", "D", "L_real", "L_fake", "k_t", "M_global"], SPEC.build.loss_groups)
    assert list(layout.values())[-2:] == [["M_global"], ["k_t"]]  # panels of their own


# ------------------------------------------------------------------------------------ learning-rate rule


def test_stall_rule_halves_the_rate_after_patience_windows_without_a_new_low() -> None:
    rule = StallDecay(1e-4, factor=0.5, window=10, patience=3)
    assert [rule.ends_window(step) for step in (0, 8, 9, 10, 19)] == [False, False, True, False, True]
    cuts = [rule.update(mean) for mean in (1.0, 0.8, 0.85, 0.8, 0.9)]  # a new low, then 3 windows without one
    assert cuts == [False, False, False, False, True] and rule.lr == 5e-5 and rule.stalls == 0
    assert rule.update(0.81) is False and rule.update(0.79) is False  # the lowest mean (0.8) is kept across a cut
    assert [rule.update(0.79) for _ in range(3)] == [False, False, True] and rule.lr == 2.5e-5

    restored = StallDecay(1e-4, factor=0.5, window=10, patience=3)
    restored.load_state(rule.state())
    assert (restored.best, restored.stalls, restored.cuts, restored.lr) == (0.79, 0, 2, 2.5e-5)

    never = StallDecay(1e-4, patience=0)
    assert not any(never.update(1.0) for _ in range(10)) and never.lr == 1e-4


def test_the_run_cuts_its_rates_where_the_rule_says(shapes: Path, tmp_path: Path) -> None:
    # A learning rate too small to move M_global: its windows stall, and the tiny preset's rule (windows of 2
    # steps, patience 1) cuts. The rule is replayed on the logged M_global.
    lr = 1e-9
    _, records = _train(shapes, tmp_path / "run", steps=8, **{"optim.lr": lr})
    replay = StallDecay(lr, factor=0.5, window=2, patience=1)
    window = torch.zeros(())
    for step, r in enumerate(records):
        assert r["lr_G"] == r["lr_D"] == replay.lr  # the rate of this step, set before its update
        window = window + torch.tensor(r["M_global"])
        if replay.ends_window(step):
            replay.update(float(window) / 2)
            window = torch.zeros(())
    assert replay.cuts >= 1


# ------------------------------------------------------------------------------------- resume and export


@pytest.mark.parametrize("techniques", [{}, {"augment": "diff", "historical_averaging": 0.1}], ids=["plain", "diff"])
def test_resume_is_bit_identical_including_k_t(shapes: Path, tmp_path: Path, techniques: dict) -> None:
    settings = {"optim.lr": 1e-9, **techniques}  # M_global stalls: a cut after the stop, in a window it split
    straight, records = _train(shapes, tmp_path / "a", steps=6, **settings)
    recipe, training, engine = _recipe(shapes, 6, **settings)
    Trainer(recipe, training, engine, tmp_path / "b", progress=False).fit(stop_at=3)  # mid-window: a partial sum
    recipe, training, engine = _recipe(shapes, 6, **settings)
    trainer = Trainer(recipe, training, engine, tmp_path / "b", progress=False)
    resumed = trainer.fit(trainer.restore(checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "b"))))

    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys() and {"extra.began.k", "extra.began.window_sum", "extra.began.schedule.cuts"} <= a.keys()
    assert not [key for key in a if not torch.equal(a[key], b[key])]
    assert float(a["extra.began.k"]) == records[-1]["k_t"] > 0 and records[-1]["lr_G"] < records[0]["lr_G"]
    again = read_metrics(tmp_path / "b" / "metrics.jsonl")
    fields = ("G", "D", "L_real", "L_fake", "k_t", "M_global", "lr_G")
    assert [[r[f] for f in fields] for r in again] == [[r[f] for f in fields] for r in records]


def test_precision_bf16_step_is_finite(shapes: Path) -> None:
    recipe, training, _ = _recipe(shapes, 1)
    config = recipe.config
    recipe = SPEC.build(config, Engine("cpu", precision="bf16"))
    loader = torch.utils.data.DataLoader(training.dataset, batch_size=4)
    metrics = recipe.train_step(to_model_range(next(iter(loader))), 0)
    assert all(torch.isfinite(v) for v in metrics.values()) and metrics["k_t"].dtype == torch.float32


def test_export_parity_sample_and_interpolate(shapes: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    last, _ = _train(shapes, run, steps=2, **{"train.ema_half_life": 100})
    runner = CliRunner()
    onnx_file = tmp_path / "began.onnx"
    result = runner.invoke(app, ["export", str(run), "--out", str(onnx_file)])
    assert result.exit_code == 0 and "parity fp32" in result.output, result.output

    module, model = load_generator(last, "generate")
    assert model.origin.endswith("EMA")  # the generator's average is what is deployed
    session, _ = create_session(onnx_file, "cpu")
    z = np.random.default_rng(1).standard_normal((5, 8), dtype=np.float32)  # a batch size the export never saw
    with torch.inference_mode():
        expected = module(torch.from_numpy(z)).numpy()
    got = session.run(None, {"z": z})[0]
    assert got.shape == (5, 3, 32, 32) and np.abs(got - expected).max() <= 1e-4

    walk = ["interpolate", "--model", str(run), "--points", "2", "--steps", "3", "--out", str(tmp_path / "walk.gif")]
    result = runner.invoke(app, [*walk, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    # Sampling the export needs no torch.
    sample = ["sample", "--model", str(onnx_file), "--n", "4", "--out", str(tmp_path / "grid.png"), "--device", "cpu"]
    code = f"import sys; sys.modules['torch'] = None; sys.argv = {['translate', *sample]!r}\n"
    code += "from translate.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (tmp_path / "grid.png").is_file(), done.stderr
