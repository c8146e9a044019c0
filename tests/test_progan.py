"""ProGAN (Karras et al. 2018): the phases and α of growth, the fade-in as the blend of its two paths, the layers
of §4, exact resume mid-fade, per-resolution batch sizes and exporting an earlier resolution. Tiny, on the CPU."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from conftest import make_shapes
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.errors import ConfigError
from translate.networks.progan import (
    EqualizedConv2d,
    ProGANDiscriminator,
    ProGANGenerator,
    fade_reals,
    level_sizes,
    pixel_norm,
)
from translate.recipes import RECIPES
from translate.recipes.base import phase_starts
from translate.recipes.progan import ProGANConfig, default_steps, growth, phases
from translate.training.curves import read_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
SPEC = RECIPES["progan"]
# Tiny networks at 16 px with 3 steps of batch 4 per phase: 4 px at steps 0-2, 8 px fading in at 3-5, and so on.
SETTINGS = ["--recipe", "progan", "--preset", "tiny", "--device", "cpu", "--set", "num_workers=0"]
SETTINGS += ["--set", "phase_images=12", "--set", "checkpoint_every=2", "--set", "log_every=1"]


def _cli(*args: str | Path) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _config(**overrides: object) -> ProGANConfig:
    config = apply_overrides(SPEC.config_class(), {**SPEC.presets["tiny"], **overrides})
    return apply_overrides(config, {"data.channels": 1, "train.steps": 100})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, 8, shape="circle", seed=3)
    return root


def test_phases_grow_from_4_px_and_alpha_rises_linearly_over_each_fade_in() -> None:
    config = _config(phase_images=8)  # 2 steps per phase at batch 4
    grown = phases(config)
    assert [p.image_size for p in grown] == [4, 8, 8, 16, 16]
    assert grown[-1].images is None  # the final resolution trains to train.steps
    starts = phase_starts(grown, config.train.batch_size)
    assert starts == (0, 2, 4, 6, 8)
    assert [growth(starts, step) for step in range(10)] == [
        (0, 1.0), (0, 1.0),  # 4 px
        (1, 0.0), (1, 0.5),  # 8 px fades in
        (1, 1.0), (1, 1.0),  # 8 px stabilises
        (2, 0.0), (2, 0.5),  # 16 px fades in
        (2, 1.0), (2, 1.0),
    ]  # fmt: skip
    # The default length: every phase, the last as long as the others (the paper's 800k images, batch 16).
    paper = apply_overrides(ProGANConfig(), {"data.image_size": 32, "data.channels": 3})
    assert default_steps(paper, None) == 7 * math.ceil(800_000 / 16)  # type: ignore[arg-type]


def test_batch_sizes_per_resolution_and_the_paper_s_at_high_resolution() -> None:
    grown = phases(_config(batch_sizes="4:16, 16:2"))
    assert [p.batch_size for p in grown] == [16, 4, 4, 2, 2]
    paper = apply_overrides(ProGANConfig(), {"data.image_size": 1024, "data.channels": 3})
    assert paper.level_batch_sizes() == {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}
    for bad in ("32:4", "4=16", "8:0"):
        with pytest.raises(ConfigError, match="batch_sizes"):
            _config(batch_sizes=bad)


def test_generator_fade_in_is_the_blend_of_the_new_level_and_the_upsampled_old_one() -> None:
    torch.manual_seed(0)
    G = ProGANGenerator(8, 3, 16, base_channels=4, max_channels=8).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        new, old = G(z, level=1), G(z, level=0)
        faded = G(z, level=1, alpha=torch.tensor(0.3))
    assert new.shape == (3, 3, 8, 8) and old.shape == (3, 3, 4, 4)
    expected = 0.3 * new + 0.7 * F.interpolate(old, scale_factor=2, mode="nearest")
    torch.testing.assert_close(faded, expected, rtol=1e-5, atol=1e-6)
    # α = 1 as a tensor (a fade's last moment) is the stabilised network; without a level, the final resolution.
    with torch.no_grad():
        torch.testing.assert_close(G(z, level=1, alpha=torch.tensor(1.0)), new)
        assert G(z).shape == (3, 3, 16, 16)
        G.set_resolution(8)
        torch.testing.assert_close(G(z), new)


def test_discriminator_fade_in_starts_as_the_lower_resolution_network() -> None:
    torch.manual_seed(0)
    D = ProGANDiscriminator(3, 16, base_channels=4, max_channels=8).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        at_zero = D(x, level=1, alpha=torch.tensor(0.0))
        lower = D(F.avg_pool2d(x, 2), level=0)
        at_one = D(x, level=1, alpha=torch.tensor(1.0))
        stable = D(x, level=1)
    torch.testing.assert_close(at_zero, lower, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(at_one, stable, rtol=1e-5, atol=1e-6)
    assert stable.shape == (4,) and not torch.allclose(stable, lower)


def test_reals_fade_like_the_generator_output() -> None:
    x = torch.rand(2, 1, 8, 8)
    coarse = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    torch.testing.assert_close(fade_reals(x, torch.tensor(0.0)), coarse)
    torch.testing.assert_close(fade_reals(x, torch.tensor(0.25)), 0.25 * x + 0.75 * coarse)
    assert fade_reals(x, 1.0) is x


def test_equalized_learning_rate_and_pixel_norm() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(64, 32, 3)
    # Stored weights are N(0, 1); the applied ones have He's standard deviation √2/√fan_in.
    assert abs(conv.weight.std().item() - 1) < 0.05
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(64 * 9))
    x = torch.randn(16, 64, 8, 8)
    y = F.leaky_relu(conv(x), 0.2)
    assert 0.5 < y.pow(2).mean().item() < 1.5  # the signal's scale is kept through the layer
    normed = pixel_norm(torch.randn(2, 5, 3, 3) * 7)
    torch.testing.assert_close(normed.pow(2).mean(dim=1), torch.ones(2, 3, 3), rtol=1e-4, atol=1e-4)
    assert level_sizes(64) == (4, 8, 16, 32, 64)


def test_config_refuses_what_does_not_apply() -> None:
    for overrides in ({"feature_matching": True}, {"minibatch_std": False}, {"real_label": 0.9}):
        with pytest.raises(ConfigError, match="progan"):
            _config(**overrides)
    with pytest.raises(ConfigError, match="power of two from 16 to 1024"):
        _config(**{"data.image_size": 24})


def test_resumes_exactly_mid_fade_and_logs_growth(shapes: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _cli("train", shapes, "--out", runs, "--name", "straight", "--steps", "6", *SETTINGS)
    straight = runs / "straight"
    records = read_metrics(straight / "metrics.jsonl")
    assert [(r["phase"], r["resolution"], round(r["alpha"], 3)) for r in records] == [
        (0, 4, 1), (0, 4, 1), (0, 4, 1), (1, 8, 0), (1, 8, 0.333), (1, 8, 0.667),
    ]  # fmt: skip

    # Stopped after step 4, in the middle of the 8 px fade-in, and resumed: bit-identical.
    resumed = runs / "resumed"
    shutil.copytree(straight, resumed)
    checkpoint.checkpoint_path(resumed, 6).unlink()
    _cli("train", shapes, "--out", runs, "--name", "resumed", "--resume", "--device", "cpu", "--set", "num_workers=0")
    expected = load_file(checkpoint.checkpoint_path(straight, 6))
    got = load_file(checkpoint.checkpoint_path(resumed, 6))
    assert expected.keys() == got.keys()
    assert not [key for key in expected if not torch.equal(expected[key], got[key])]
    # The 16 px layers have not trained yet: their weights are still their initial N(0, 1) draw.
    g16 = "G.to_rgb.2.weight"
    assert abs(expected[g16].std().item() - 1) < 0.5 and torch.equal(expected[g16], got[g16])


def test_exports_the_final_or_an_earlier_resolution(shapes: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _cli("train", shapes, "--out", runs, "--name", "run", "--steps", "4", *SETTINGS)
    # A preview closes every phase (here the 4 px one, at step 3) besides the run's last step.
    assert sorted(p.name for p in (runs / "run" / "previews").iterdir()) == ["step_00000003.png", "step_00000004.png"]
    for resolution, size in ((None, 16), ("8", 8)):
        out = tmp_path / f"g{size}.onnx"
        extra = ["--resolution", resolution] if resolution else []
        assert "parity fp32" in _cli("export", runs / "run", "--out", out, *extra)
        shape = onnx.load(out).graph.output[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in shape[1:]] == [3, size, size]
        grid = tmp_path / f"grid{size}.png"
        _cli("sample", "--model", out, "--n", "4", "--out", grid, "--device", "cpu")
        assert grid.is_file()
    result = RUNNER.invoke(app, ["export", str(runs / "run"), "--resolution", "32", "--out", str(tmp_path / "x.onnx")])
    assert result.exit_code != 0 and "draws at 4, 8, 16 px" in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_resolution_is_refused_for_a_single_size_generator(shapes: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = ["--recipe", "dcgan", "--preset", "tiny", "--device", "cpu", "--steps", "1", "--set", "num_workers=0"]
    _cli("train", shapes, "--out", runs, "--name", "dc", *args)
    result = RUNNER.invoke(app, ["export", str(runs / "dc"), "--resolution", "16", "--out", str(tmp_path / "d.onnx")])
    assert result.exit_code != 0 and "progressively grown" in result.output


def test_previews_show_the_resolution_being_trained_at_the_final_size(shapes: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _cli("train", shapes, "--out", runs, "--name", "p", "--steps", "2", *SETTINGS, "--set", "preview_every=1")
    grid = np.asarray(Image.open(runs / "p" / "previews" / "step_00000001.png"))
    # 8 × 8 samples at 4 px, each drawn as a 4 × 4 block of equal pixels in a 16 px cell (after a 2 px border).
    cell = grid[2:18, 2:18] if grid.ndim == 2 else grid[2:18, 2:18, 0]
    assert cell.shape == (16, 16)
    blocks = cell.reshape(4, 4, 4, 4).transpose(0, 2, 1, 3).reshape(16, 16)
    assert (blocks == blocks[:, :1]).all()
