"""CUT and FastCUT: the anti-aliased resampling, PatchNCE, the projections built up front, both presets, and
`--set resample` for CycleGAN. (Training, exact resume, export and apply of every recipe: test_recipes.py; tiles:
test_tiles.py; two processes: test_distributed.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.networks.layers import init_weights
from translate.networks.resample import BlurDownsample, BlurUpsample
from translate.networks.resnet import ResnetGenerator
from translate.recipes import RECIPES
from translate.recipes.cut import CUT, PatchProjections, patch_nce
from translate.recipes.restore import load_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference_down(x: torch.Tensor) -> torch.Tensor:
    """Zhang (2019) / the CUT code's Downsample, filter size 3: reflect pad 1, [1, 2, 1]ᵀ[1, 2, 1] / 16, stride 2."""
    a = torch.tensor([1.0, 2.0, 1.0])
    kernel = (a[:, None] * a[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, stride=2, groups=x.shape[1])


def _reference_up(x: torch.Tensor) -> torch.Tensor:
    """The CUT code's Upsample, filter size 4: replicate pad 1, [1, 3, 3, 1]ᵀ[1, 3, 3, 1] / 64 · 4 transposed at
    stride 2 with padding 2, then one row and column cropped at each end."""
    a = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = (a[:, None] * a[None, :] / 64 * 4).expand(x.shape[1], 1, 4, 4)
    out = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, stride=2, padding=2, groups=x.shape[1])
    return out[:, :, 1:-1, 1:-1]


def test_blur_resampling_is_the_published_filter_and_never_trained() -> None:
    x = torch.randn(2, 5, 12, 18)
    down, up = BlurDownsample(5), BlurUpsample(5)
    torch.testing.assert_close(down(x), _reference_down(x))
    torch.testing.assert_close(up(x), _reference_up(x))
    assert down(x).shape == (2, 5, 6, 9) and up(x).shape == (2, 5, 24, 36)
    torch.testing.assert_close(up(torch.ones(1, 5, 6, 6)), torch.ones(1, 5, 12, 12))  # weights sum to one
    for layer in (down, up):
        assert not list(layer.parameters()) and not layer.state_dict()  # fixed: no weights to train or to save
        init_weights(layer, 0.02)
    torch.testing.assert_close(down(x), _reference_down(x))  # initialisation leaves the filters alone


@pytest.mark.parametrize("resample", ["transposed", "antialiased"])
def test_resnet_encoder_features_are_read_at_the_published_depths(resample: str) -> None:
    G = ResnetGenerator(3, 3, base_channels=8, num_blocks=9, resample=resample)
    x = torch.randn(2, 3, 32, 32)
    assert G(x).shape == x.shape
    features = G(x, encode=G.feature_layers)
    assert [f.shape[1] for f in features] == list(G.feature_channels) == [3, 16, 32, 32, 32]
    if resample == "antialiased":
        assert G.feature_layers == (0, 4, 8, 12, 16)  # the authors' nce_layers for this layout
        assert [f.shape[-1] for f in features] == [38, 32, 16, 8, 8]
    # the features are the layers' outputs on the way to the image
    torch.testing.assert_close(features[-1], G.layers[: G.feature_layers[-1] + 1](x))


def test_patch_nce_is_the_infonce_of_each_patch_against_its_image() -> None:
    rng = np.random.default_rng(0)
    q = F.normalize(torch.from_numpy(rng.standard_normal((2 * 3, 4)).astype(np.float32)), dim=1)
    k = F.normalize(torch.from_numpy(rng.standard_normal((2 * 3, 4)).astype(np.float32)), dim=1)
    expected = []
    for image in range(2):  # by hand: logit 0 is the positive, then the other 2 patches of the same image
        for p in range(3):
            i = image * 3 + p
            logits = [float(q[i] @ k[i])] + [float(q[i] @ k[image * 3 + o]) for o in range(3) if o != p]
            logits = np.array(logits) / 0.07
            expected.append(-logits[0] + np.log(np.exp(logits).sum()))
    assert float(patch_nce(q, k, 2, 0.07)) == pytest.approx(np.mean(expected), rel=1e-5)
    assert float(patch_nce(k, k, 2, 0.07)) < float(patch_nce(q, k, 2, 0.07))  # a query at its key's place wins


def test_projections_sample_the_same_places_for_query_and_key() -> None:
    F_ = PatchProjections((3, 6), units=8)
    features = [torch.randn(2, 3, 5, 5), torch.randn(2, 6, 4, 4)]
    keys, places = F_(features, 7)
    queries, again = F_(features, 7, places)
    assert [p.shape[0] for p in places] == [7, 7] and all(a is b for a, b in zip(places, again, strict=True))
    torch.testing.assert_close(keys[0], queries[0])
    assert keys[0].shape == (2 * 7, 8)
    torch.testing.assert_close(keys[1].norm(dim=1), torch.ones(14))


def _tiny(preset: str) -> CUT:
    spec = RECIPES["cut"]
    overrides = {**spec.presets["tiny"], **spec.presets[preset], "data.channels": 3, "train.steps": 4}
    return CUT(apply_overrides(spec.config_class(), overrides), Engine("cpu", precision="fp32"))


def test_projections_are_built_with_the_recipe_from_the_seed() -> None:
    a, b = _tiny("cut").modules(), _tiny("cut").modules()
    assert set(a) == {"G", "D_B", "F"} and len(a["F"].mlps) == len(a["G"].feature_layers)
    for name in a:
        for (key, x), (_, y) in zip(a[name].state_dict().items(), b[name].state_dict().items(), strict=True):
            assert torch.equal(x, y), f"{name}.{key}"


@pytest.mark.parametrize("preset", ["cut", "fastcut"])
def test_a_step_trains_generator_projections_and_discriminator(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = _tiny(preset)
    if preset == "fastcut":
        monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.zeros(*shape))  # the flipped branch
    before = {name: [p.clone() for p in m.parameters()] for name, m in recipe.modules().items()}
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    metrics = recipe.train_step(batch, 1)
    assert ("nce_idt" in metrics) == (preset == "cut")
    assert all(torch.isfinite(v) for v in metrics.values())
    assert float(metrics["nce"]) > 0
    for name, module in recipe.modules().items():
        moved = any(not torch.equal(p, q) for p, q in zip(before[name], module.parameters(), strict=True))
        assert moved, f"{name} did not change"


def test_cyclegan_trains_and_exports_with_antialiased_resampling(unpaired_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = ["train", str(unpaired_data), "--recipe", "cyclegan", "--preset", "tiny", "--steps", "2", "--out", str(runs)]
    args += ["--name", "aa", "--device", "cpu", "--set", "resample=antialiased", "--set", "checkpoint_every=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    module, description = load_generator(checkpoint.latest_checkpoint(runs / "aa"), "b2a")
    assert any(isinstance(m, BlurUpsample) for m in module.modules()) and description.stride == 4
    result = CliRunner().invoke(app, ["export", str(runs / "aa"), "--out", str(tmp_path / "aa.onnx")])
    assert result.exit_code == 0, result.output
    assert "parity fp32" in result.output
