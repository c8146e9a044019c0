"""Generator EMA: the update rule, its place in checkpoints, exact resume, and that deployment uses it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_shapes
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.core import checkpoint
from translate.core.ema import NORM_SAMPLES, GeneratorEMA
from translate.deploy.models import load_sampler
from translate.networks.dcgan import DCGANGenerator
from translate.recipes.restore import load_generator

RUNNER = CliRunner()
SETTINGS = ["--preset", "tiny", "--device", "cpu", "--set", "num_workers=0", "--set", "checkpoint_every=2"]


def _cli(*args: str | Path) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_update_follows_the_half_life_with_ramp_up() -> None:
    live = torch.nn.Linear(2, 1)
    ema = GeneratorEMA({"G": live}, half_life=100, rampup=None)
    with torch.no_grad():
        start = ema.averages["G"].weight.clone()
        live.weight.fill_(1.0)
    ema.update({"G": live}, batch_images=100, images_seen=100)  # one half-life: halfway to the live weights
    assert torch.allclose(ema.averages["G"].weight, (start + 1.0) / 2)
    ramped = GeneratorEMA({"G": live}, half_life=10_000, rampup=0.05)
    assert ramped.beta(10, 200) == pytest.approx(0.5 ** (10 / 10))  # half-life capped at 0.05 × 200 images
    assert ramped.beta(10, 10**7) == pytest.approx(0.5 ** (10 / 10_000))
    assert not ema.averages["G"].weight.requires_grad


def test_swapped_in_lends_the_average_and_gives_the_weights_back() -> None:
    live = torch.nn.Linear(2, 1)
    ema = GeneratorEMA({"G": live}, half_life=10)
    with torch.no_grad():
        ema.averages["G"].weight.fill_(3.0)
    own = live.weight.detach().clone()
    with ema.swapped_in({"G": live}):
        assert torch.all(live.weight == 3.0)
    assert torch.equal(live.weight, own)


def test_measured_norms_are_the_averages_own_statistics() -> None:
    live = DCGANGenerator(8, 1, 32, base_channels=4)
    ema = GeneratorEMA({"G": live}, half_life=100)
    average = ema.averages["G"]
    with torch.no_grad():  # the average drifts away from the live weights whose statistics it copied
        for p in average.parameters():
            p.mul_(1.5)
    first = next(m for m in average.modules() if isinstance(m, torch.nn.BatchNorm2d))
    z = torch.randn(NORM_SAMPLES, 8, generator=torch.Generator().manual_seed(0))
    seen: list[torch.Tensor] = []
    hook = first.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        average.train()(z)  # the first norm's input for every sample at once
    expected_mean, expected_var = seen[0].mean((0, 2, 3)), seen[0].var((0, 2, 3))
    hook.remove()
    average.eval()
    assert not torch.allclose(first.running_mean, expected_mean, atol=1e-3)  # copied from the live network

    chunks = iter(z.split(256))
    ema.measure_norms("G", lambda n: {"z": next(chunks)}, 256)
    # Equal batches: the mean of their means is the overall mean; their variances average to nearly the whole one.
    assert torch.allclose(first.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(first.running_var, expected_var, rtol=0.02)
    assert not average.training and first.momentum == 0.1


def test_measured_norms_leave_a_network_without_batch_norm_alone() -> None:
    ema = GeneratorEMA({"G": torch.nn.Linear(2, 1)}, half_life=10)
    ema.measure_norms("G", lambda n: pytest.fail("no batch norm, no samples"), 4)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ema")
    make_shapes(root / "data", 8, shape="circle", seed=3)
    _cli("train", root / "data", "--recipe", "dcgan", "--out", root / "runs", "--name", "r", "--steps", "4", *SETTINGS)
    return root


def test_generation_runs_keep_an_average_that_resumes_exactly(run: Path) -> None:
    straight = run / "runs" / "r"
    saved = load_file(checkpoint.latest_checkpoint(straight))
    averaged = [key for key in saved if key.startswith("G_ema.")]
    assert averaged and {k[len("G_ema.") :] for k in averaged} == {k[2:] for k in saved if k.startswith("G.")}
    assert any(
        not torch.equal(saved[f"G_ema.{k[2:]}"], saved[k]) for k in saved if k.startswith("G.") and k.endswith("weight")
    )

    resumed = run / "runs" / "resumed"
    shutil.copytree(straight, resumed)
    checkpoint.latest_checkpoint(resumed).unlink()
    _cli("train", run / "data", "--out", run / "runs", "--name", "resumed", "--resume", "--device", "cpu")
    got = load_file(checkpoint.latest_checkpoint(resumed))
    assert [key for key in saved if not torch.equal(saved[key], got[key])] == []


def test_sample_and_export_use_the_average(run: Path) -> None:
    path = checkpoint.latest_checkpoint(run / "runs" / "r")
    module, description = load_generator(path, "generate")
    assert description.origin.endswith("EMA")
    expected = load_file(path)
    assert all(torch.equal(value, expected[f"G_ema.{key}"]) for key, value in module.state_dict().items())
    sampler = load_sampler(str(path), "cpu")
    z = np.random.default_rng(0).standard_normal((2, description.latent.shape[0]), dtype=np.float32)
    with torch.inference_mode():
        direct = module(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(sampler({"z": z}), direct, rtol=1e-6, atol=1e-6)
    onnx_file = run / "g.onnx"
    assert "EMA" in _cli("export", path, "--out", onnx_file)  # the export names what it exports


def test_ema_can_be_turned_off(tmp_path: Path) -> None:
    make_shapes(tmp_path / "data", 8, shape="circle", seed=3)
    args = ["train", tmp_path / "data", "--recipe", "dcgan", "--out", tmp_path / "runs", "--name", "plain"]
    _cli(*args, "--steps", "2", *SETTINGS, "--set", "train.ema_half_life=0")
    saved = load_file(checkpoint.latest_checkpoint(tmp_path / "runs" / "plain"))
    assert not any(key.startswith("G_ema.") for key in saved)
