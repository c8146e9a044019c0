"""LAPGAN (Denton et al. 2015): the Laplacian pyramid, the coarse-to-fine sampling chain, its named inputs, one
training step reaching every parameter, the class-conditional variant from the command line to an export with a
`label` input, walks that hold the level noise, and the refusals. Tiny, on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import make_shapes
from PIL import Image
from test_distributed import TINY as DDP_SETTINGS
from test_distributed import assert_equal, rank_weights, torchrun
from typer.testing import CliRunner

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.data.folders import to_model_range
from translate.deploy import sampling
from translate.description import GeneratorInput, ModelDescription
from translate.errors import ConfigError
from translate.networks.lapgan import (
    LAPGANGenerator,
    downsample,
    gaussian_pyramid,
    laplacian_pyramid,
    reconstruct,
    upsample,
)
from translate.recipes import RECIPES
from translate.recipes.lapgan import generator_inputs
from translate.training.launch import complete_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEC = RECIPES["lapgan"]
RUNNER = CliRunner()
TINY = ["--preset", "tiny", "--device", "cpu", "--set", "num_workers=0", "--set", "log_every=1"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, 8, shape="circle", seed=3)
    return root


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classes")
    make_shapes(root / "circle", 4, shape="circle", seed=3)
    make_shapes(root / "square", 4, shape="square", seed=4)
    return root


def _recipe(data: Path, **overrides: object):
    settings = {**SPEC.presets["tiny"], "train.steps": 2, "num_workers": 0, **overrides}
    config = apply_overrides(SPEC.config_class(), settings)
    training = SPEC.make_data(config, data)
    config = complete_config(SPEC, config, training)
    return SPEC.build(config, Engine("cpu", precision="fp32")), training


def _generator(num_classes: int = 0, image_size: int = 32) -> LAPGANGenerator:
    torch.manual_seed(0)
    return LAPGANGenerator(8, 3, image_size, units=16, width=8, num_classes=num_classes).eval()


def _noise(G: LAPGANGenerator, n: int) -> dict[str, torch.Tensor]:
    return {name: torch.randn(n, 1, size, size) for name, size in zip(G.noise_names, G.sizes[1:], strict=True)}


def _cli(*args: str | Path) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


# ------------------------------------------------------------------------------------------------ pyramid


@pytest.mark.parametrize(("size", "levels"), [(32, 3), (64, 4), (16, 2)])
@pytest.mark.parametrize("channels", [1, 3])
def test_laplacian_pyramid_reconstructs_the_image(size: int, levels: int, channels: int) -> None:
    image = torch.rand(2, channels, size, size) * 2 - 1
    coarse, bands = laplacian_pyramid(image, levels)
    assert coarse.shape[-1] == size // 2 ** (levels - 1)
    assert [band.shape[-1] for band in bands] == [size // 2 ** (levels - 1 - k) for k in range(1, levels)]
    assert torch.allclose(reconstruct(coarse, bands), image, atol=1e-6, rtol=0)
    # h_K = I − u(d(I)): the finest band is what the low-pass image misses.
    assert torch.allclose(bands[-1], image - upsample(downsample(image)), atol=1e-6, rtol=0)


def test_down_and_up_sampling_are_the_2x2_mean_and_bilinear() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)
    assert downsample(image).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert torch.equal(upsample(torch.full((1, 3, 4, 4), 0.25)), torch.full((1, 3, 8, 8), 0.25))
    ramp = torch.tensor([[[[0.0, 1.0]]]]).expand(1, 1, 2, 2)  # bilinear, half-pixel centres: 0, .25, .75, 1
    assert upsample(ramp)[0, 0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]
    # The Gaussian pyramid of a 32 px batch: 8, 16, 32, each level the mean of the next.
    pyramid = gaussian_pyramid(torch.rand(1, 1, 32, 32), 3)
    assert [p.shape[-1] for p in pyramid] == [8, 16, 32] and torch.equal(pyramid[0], downsample(pyramid[1]))


# ----------------------------------------------------------------------------------------------- networks


def test_sampling_chains_the_levels_coarse_to_fine() -> None:
    G = _generator()
    z, noise = torch.randn(3, 8), _noise(G, 3)
    with torch.no_grad():
        image = G(z, **noise)
        expected = G.coarse(z)
        for level, name in zip(G.levels, G.noise_names, strict=True):
            low = upsample(expected)
            expected = low + level(low, noise[name])
        assert image.shape == (3, 3, 32, 32) and torch.equal(image, expected)
        assert G.coarse(z).abs().max() <= 1  # G_0's tanh; the residuals are unbounded
        # With every G_k's output layer at zero, the sample is the coarse image upsampled: u(u(G_0(z))).
        for level in G.levels:
            level.rest[-1].weight.zero_()
            level.rest[-1].bias.zero_()
        assert torch.equal(G(z, **noise), upsample(upsample(G.coarse(z))))
        assert G(z, **noise).abs().max() <= 1  # bilinear weights are convex: [-1, 1] stays inside


def test_training_call_conditions_each_level_on_the_given_lowpass() -> None:
    G = _generator(num_classes=2)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    lowpass = [upsample(p) for p in gaussian_pyramid(real, 3)[:-1]]
    z, noise, labels = torch.randn(2, 8), _noise(G, 2), torch.tensor([0, 1])
    with torch.no_grad():
        outputs = G(z, labels, lowpass=lowpass, **noise)
        parts = G.embed(labels).split(G.embedding_sizes, dim=1)
        assert [o.shape[-1] for o in outputs] == [8, 16, 32]
        assert torch.equal(outputs[0], G.coarse(z, parts[0]))
        assert torch.equal(outputs[2], lowpass[1] + G.levels[1](lowpass[1], noise["noise_32"], parts[2]))
        # The label changes every level; a ready embedding stands in for it (class walks, ONNX's cut graph).
        other = G(z, torch.tensor([1, 0]), lowpass=lowpass, **noise)
        assert all(not torch.equal(a, b) for a, b in zip(outputs, other, strict=True))
        assert torch.equal(G(z, embedding=G.embed(labels), **noise), G(z, labels, **noise))
    with pytest.raises(ValueError, match="noise_16"):
        G(z, labels, noise_32=noise["noise_32"])
    with pytest.raises(ValueError, match="labels"):
        G(z, **noise)


def test_generator_inputs_name_each_levels_noise() -> None:
    config = apply_overrides(SPEC.config_class(), {"data.image_size": 64, "latent_dim": 12})
    assert config.sizes == (8, 16, 32, 64)
    inputs = generator_inputs(config)
    assert [(i.name, i.kind, i.shape) for i in inputs] == [
        ("z", "normal", (12,)),
        ("noise_16", "normal", (1, 16, 16)),
        ("noise_32", "normal", (1, 32, 32)),
        ("noise_64", "normal", (1, 64, 64)),
    ]
    model = ModelDescription("lapgan", "generator", "generate", 3, 64, inputs=inputs)
    assert model.latent.name == "z"  # walks and truncation act on z, not on a noise plane
    conditional = apply_overrides(config, {"conditional": True, "class_names": ("a", "b"), "coarse_size": 16})
    assert [i.name for i in generator_inputs(conditional)] == ["z", "noise_32", "noise_64", "label"]


def test_config_defaults_are_the_papers_and_refusals_are_clear() -> None:
    config = SPEC.config_class()
    assert (config.data.image_size, config.coarse_size, config.latent_dim, config.train.batch_size) == (32, 8, 100, 128)
    assert (config.generator_units, config.discriminator_units) == (1200, 600)
    assert (config.generator_channels, config.discriminator_channels) == (128, 128)
    assert (config.optim.lr, config.optim.beta1) == (2e-4, 0.5)
    for bad, says in (
        (["coarse_size=6"], "power of two"),
        (["coarse_size=2"], "power of two"),
        (["coarse_size=32"], "below image_size"),
        (["feature_matching=true"], "one discriminator per level"),
        (["minibatch_kernels=10"], "one discriminator per level"),
        (["minibatch_std=true"], "one discriminator per level"),
        ({"class_names": ("a", "b")}, "conditional=true"),
    ):
        with pytest.raises(ConfigError, match=says):
            apply_overrides(config, bad)


# ----------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "overrides", [{}, {"conditional": True, "augment": "diff", "historical_averaging": 0.1}], ids=["plain", "cond"]
)
def test_one_step_trains_every_parameter_of_every_level(shapes: Path, classes: Path, overrides: dict) -> None:
    recipe, training = _recipe(classes if overrides else shapes, **overrides)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in recipe.modules().items()}
    loader = torch.utils.data.DataLoader(training.dataset, batch_size=4)
    metrics = recipe.train_step(to_model_range(next(iter(loader))), 0)
    assert {"G", "D", "G_8", "G_16", "G_32", "D_8", "D_16", "D_32"} <= metrics.keys()
    assert all(torch.isfinite(v) for v in metrics.values())
    assert float(metrics["D"]) == pytest.approx(sum(float(metrics[f"D_{s}"]) for s in (8, 16, 32)), rel=1e-5)
    # Every level is used in every step: no parameter is left without a gradient (which DDP would wait for), and
    # every one moved.
    for key, module in recipe.modules().items():
        unused = [name for name, p in module.named_parameters() if p.grad is None]
        assert not unused, (key, unused)
        assert all(not torch.equal(a, b) for a, b in zip(before[key], module.parameters(), strict=True)), key


def test_previews_are_fixed_by_the_seed_and_rows_name_their_class(classes: Path) -> None:
    recipe, training = _recipe(classes, conditional=True)
    again = SPEC.make_data(recipe.config, classes).preview
    assert {"z", "label", "noise_16", "noise_32"} <= training.preview.keys()
    assert all(torch.equal(training.preview[k], again[k]) for k in training.preview)
    rows = recipe.preview(training.preview)
    assert [label for label, _ in rows] == ["circle", "square"] * 4
    assert all(images.shape == (8, 3, 32, 32) and images.abs().max() <= 1 for _, images in rows)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rows, recipe.preview(training.preview), strict=True))


def test_conditional_trains_from_the_command_line_and_exports_a_label_input(classes: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    settings = [*TINY, "--steps", "2", "--set", "conditional=true", "--set", "train.ema_half_life=100"]
    _cli("train", classes, "--recipe", "lapgan", "--out", runs, "--name", "cond", *settings)
    run = runs / "cond"
    assert (run / "previews" / "step_00000002.png").is_file()
    onnx_file = tmp_path / "cond.onnx"
    assert "parity fp32" in _cli("export", run, "--out", onnx_file)
    graph = onnx.load(onnx_file).graph
    assert [i.name for i in graph.input] == ["z", "noise_16", "noise_32", "label"]
    for model in (onnx_file, run):  # ONNX Runtime and PyTorch
        grid = tmp_path / "square.png"
        _cli("sample", "--model", model, "--n", "4", "--label", "square", "--out", grid, "--device", "cpu")
        assert Image.open(grid).size[0] > 32
        walk = tmp_path / "walk.png"
        _cli("interpolate", "--model", model, "--labels", "circle,square", "--steps", "3", "--out", walk)
        assert Image.open(walk).size[0] > 3 * 32


def test_conditional_on_unlabeled_data_is_one_clear_line(shapes: Path, tmp_path: Path) -> None:
    args = ["train", shapes, "--recipe", "lapgan", "--out", tmp_path, *TINY, "--set", "conditional=true"]
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "conditional=true" in lines[0] and "one sub-folder of images per class" in lines[0]


@pytest.mark.skipif(sys.platform == "win32" or not torch.distributed.is_available(), reason="torch.distributed")
def test_two_processes_train_every_level_in_step(classes: Path, tmp_path: Path) -> None:
    # DistributedDataParallel without find_unused_parameters: a parameter that some step left without a gradient
    # (a level, a class embedding) would stop the second step. Both ranks end with the same weights.
    args = ["train", str(classes), "--recipe", "lapgan", "--out", str(tmp_path / "runs"), "--name", "ddp"]
    args += ["--preset", "tiny", *DDP_SETTINGS, "--set", "conditional=true", "--batch-size", "4", "--steps", "2"]
    assert "cpu ×2 processes" in torchrun(tmp_path, args)
    rank0, parameters = rank_weights(tmp_path, 0)
    rank1, _ = rank_weights(tmp_path, 1)
    assert any(".levels.1." in key for key in parameters) and any("embedding" in key for key in parameters)
    assert_equal(rank0, rank1, parameters)
    assert_equal(rank0, checkpoint.load_tensors(checkpoint.checkpoint_path(tmp_path / "runs" / "ddp", 2)), parameters)


# ---------------------------------------------------------------------------------------------------- walks


class NoiseSampler:
    """A generator with a latent and one noise plane whose images are the plane itself, and records its feeds."""

    description = "fake"

    def __init__(self) -> None:
        inputs = (GeneratorInput("z", "normal", (4,)), GeneratorInput("noise_4", "normal", (1, 4, 4)))
        self.model = ModelDescription("fake", "generator", "generate", 1, 4, inputs=inputs)
        self.feeds: list[dict[str, np.ndarray]] = []

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self.feeds.append(feeds)
        return np.tanh(feeds["noise_4"])


def test_walks_hold_the_level_noise_and_samples_draw_it(tmp_path: Path) -> None:
    sampler = NoiseSampler()
    out = sampling.run_interpolate(sampler, out=tmp_path / "walk.png", points=3, steps=4)
    [feeds] = sampler.feeds
    assert feeds["noise_4"].shape == (12, 1, 4, 4) and (feeds["noise_4"] == feeds["noise_4"][0]).all()
    assert len({row.tobytes() for row in feeds["z"]}) == 12  # only z moves
    strip = np.asarray(Image.open(out))
    frames = [strip[2:6, 2 + 6 * i : 6 + 6 * i] for i in range(4)]  # a 2 px border between 4 px frames
    assert all(np.array_equal(frames[0], frame) for frame in frames)  # no flicker
    sampling.run_sample(sampler, n=5, out=tmp_path / "grid.png")
    drawn = sampler.feeds[-1]["noise_4"]
    assert len({plane.tobytes() for plane in drawn}) == 5  # separate samples draw their own noise
