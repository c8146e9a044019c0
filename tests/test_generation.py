"""Generation recipes (dcgan, wgan-gp, cgan): networks, one training step each, the CLI, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from typer.testing import CliRunner

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.data.folders import to_model_range
from translate.errors import ConfigError
from translate.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from translate.recipes import RECIPES
from translate.recipes.generation import make_data
from translate.recipes.wgan_gp import gradient_penalty
from translate.training.launch import complete_config
from translate.training.loop import Trainer

GENERATORS = [name for name, spec in RECIPES.items() if spec.is_generator]
TINY = ["--image-size", "32", "--batch-size", "4", "--set", "generator_channels=8", "--set", "discriminator_channels=8"]


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """Three classes of 6 grayscale 28 px images: bars at different angles."""
    root = tmp_path / "digits"
    rng = np.random.default_rng(0)
    for label in range(3):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(6):
            image = np.zeros((28, 28), np.uint8)
            if label == 0:
                image[:, 10 + i % 4 : 16 + i % 4] = 255
            elif label == 1:
                image[10 + i % 4 : 16 + i % 4, :] = 255
            else:
                np.fill_diagonal(image, 255)
            image = np.clip(image.astype(int) + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("classes", [0, 4])
def test_dcgan_networks_follow_image_size(size: int, classes: int) -> None:
    g = DCGANGenerator(16, 1, size, base_channels=8, num_classes=classes)
    labels = torch.arange(2) % max(classes, 1) if classes else None
    x = g(torch.randn(2, 16), labels)
    assert x.shape == (2, 1, size, size) and x.abs().max() <= 1
    stride2 = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d) and m.stride == (2, 2)]
    assert len(stride2) == int(np.log2(size)) - 2  # one doubling per layer from 4×4
    d = DCGANDiscriminator(1, size, base_channels=8, num_classes=classes, norm="layer")
    assert d(x, labels).shape == (2,)


def test_bad_image_size_is_refused() -> None:
    with pytest.raises(ConfigError, match="power of two"):
        apply_overrides(RECIPES["dcgan"].config_class(), {"data.image_size": 48})


def test_wgan_defaults_are_the_papers() -> None:
    config = RECIPES["wgan-gp"].config_class()
    assert (config.n_critic, config.lambda_gp, config.critic_norm) == (5, 10.0, "layer")
    assert (config.optim.lr, config.optim.beta1, config.optim.beta2) == (1e-4, 0.0, 0.9)
    with pytest.raises(ConfigError, match="per sample"):
        apply_overrides(config, {"critic_norm": "batch"})


def test_gradient_penalty_is_zero_for_unit_gradient() -> None:
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))  # ‖∇‖ = 1 everywhere
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    assert float(gradient_penalty(critic, real, fake).detach()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        critic[1].weight.mul_(3)  # ‖∇‖ = 3 → (3 − 1)² = 4
    assert float(gradient_penalty(critic, real, fake).detach()) == pytest.approx(4.0)


def _recipe(name: str, data: Path, steps: int = 2, **overrides: object):
    spec = RECIPES[name]
    config = apply_overrides(
        spec.config_class(),
        {
            "data.image_size": 32,
            "train.batch_size": 4,
            "generator_channels": 8,
            "discriminator_channels": 8,
            "train.steps": steps,
            "num_workers": 0,
            "log_every": 1,
            "preview_every": 1000,
            "checkpoint_every": 1000,
            **overrides,
        },
    )
    training = spec.make_data(config, data)
    config = complete_config(spec, config, training)
    engine = Engine("cpu")
    return spec.build(config, engine), training, engine


@pytest.mark.parametrize("name", GENERATORS)
def test_one_step_updates_both_networks(name: str, digits: Path) -> None:
    recipe, training, _ = _recipe(name, digits)
    assert recipe.config.data.channels == 1
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in recipe.modules().items()}
    first = RECIPES[name].phases(recipe.config)[0]  # step 0's image size (ProGAN's 4 px)
    dataset = training.at_size(first.image_size) if first.image_size else training.dataset
    loader = torch.utils.data.DataLoader(dataset, batch_size=4 * recipe.batches_per_step)
    metrics = recipe.train_step(to_model_range(next(iter(loader))), 0)
    assert metrics and all(torch.isfinite(v) for v in metrics.values())
    for key, module in recipe.modules().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[key], module.parameters(), strict=True)), key
    assert all(p.requires_grad for p in recipe.D.parameters())  # D is unfrozen again after G's step


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_lr_sets_only_the_generators_rate(name: str, digits: Path) -> None:
    recipe, _, _ = _recipe(name, digits)
    rates = {key: opt.param_groups[0]["lr"] for key, opt in recipe.optimizers().items()}
    own = recipe.config.generator_lr or recipe.config.optim.lr  # InfoGAN's default is its paper's 1e-3
    assert rates["G"] == own and rates["D"] == recipe.config.optim.lr
    recipe, _, _ = _recipe(name, digits, generator_lr=3e-3)
    rates = {key: opt.param_groups[0]["lr"] for key, opt in recipe.optimizers().items()}
    assert rates["G"] == 3e-3 and rates["D"] == recipe.config.optim.lr


@pytest.mark.parametrize(
    ("name", "order"), [("dcgan", ["D", "G"]), ("cgan", ["D", "G"]), ("wgan-gp", ["D"] * 5 + ["G"])]
)
def test_update_order_follows_the_paper(name: str, order: list[str], digits: Path) -> None:
    recipe, training, _ = _recipe(name, digits)
    calls = []
    recipe.opt_D.register_step_post_hook(lambda *args: calls.append("D"))
    recipe.opt_G.register_step_post_hook(lambda *args: calls.append("G"))
    loader = torch.utils.data.DataLoader(training.dataset, batch_size=4 * recipe.batches_per_step)
    recipe.train_step(to_model_range(next(iter(loader))), 0)
    assert calls == order


@pytest.mark.parametrize("options", [{}, {"aux_classifier": 1.0}])
def test_cgan_saves_class_names_and_resumes_exactly(options: dict, digits: Path, tmp_path: Path) -> None:
    straight, training, engine = _recipe("cgan", digits, steps=4, **options)
    last = Trainer(straight, training, engine, tmp_path / "a", progress=False).fit()
    assert checkpoint.read(last).meta["config"]["class_names"] == ["class0", "class1", "class2"]

    first, training, engine = _recipe("cgan", digits, steps=4, **options)
    Trainer(first, training, engine, tmp_path / "b", progress=False).fit(stop_at=2)
    resumed, training, engine = _recipe("cgan", digits, steps=4, **options)
    trainer = Trainer(resumed, training, engine, tmp_path / "b", progress=False)
    end = trainer.fit(trainer.restore(checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "b"))))
    from safetensors.torch import load_file

    a, b = load_file(str(last)), load_file(str(end))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cgan_auxiliary_classifier_learns_the_real_classes(digits: Path, tmp_path: Path) -> None:
    plain, _, _ = _recipe("cgan", digits)
    assert plain.D.classifier is None
    with pytest.raises(ValueError, match="no auxiliary classifier"):
        plain.D(torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long), with_classes=True)
    with pytest.raises(ConfigError, match="aux_classifier"):
        _recipe("cgan", digits, aux_classifier=-1.0)

    recipe, training, engine = _recipe("cgan", digits, steps=40, aux_classifier=1.0, augment="none", lr=2e-3)
    assert recipe.D.classifier is not None and recipe.D.classifier.out_features == 3
    Trainer(recipe, training, engine, tmp_path / "run", progress=False).fit()
    losses = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [line for line in losses if "class_D" in line]
    assert len(losses) == 40 and all(np.isfinite(line["class_G"]) for line in losses)
    assert np.mean([x["class_D"] for x in losses[-5:]]) < 0.5 * np.mean([x["class_D"] for x in losses[:5]])
    batch = to_model_range(next(iter(torch.utils.data.DataLoader(training.dataset, batch_size=18))))
    with torch.no_grad():
        scores, logits = recipe.D(batch["image"], batch["label"], with_classes=True)
    assert scores.shape == (18,) and logits.shape == (18, 3)
    assert (logits.argmax(1) == batch["label"]).float().mean() >= 0.9  # the bars' three directions, named


def test_labeled_data_needs_classes(tmp_path: Path, digits: Path) -> None:
    from translate.errors import DataError

    config = RECIPES["cgan"].config_class()
    with pytest.raises(DataError, match="one sub-folder of images per class"):
        make_data(config, digits / "class0", labeled=True)


@pytest.mark.parametrize("name", GENERATORS)
def test_cli_train_sample_interpolate(name: str, digits: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(digits), "--recipe", name, "--steps", "2", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    run = out / "digits"
    assert (run / "previews" / "step_00000002.png").is_file()

    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", "--model", str(run), "--n", "6", "--out", str(grid), "--seed", "3"])
    assert result.exit_code == 0, result.output
    # near-square (3 columns, 2 rows); a cgan grid has one row per class (3 classes: 3 rows of 2)
    columns, rows = (2, 3) if RECIPES[name].data == "classes" else (3, 2)
    assert Image.open(grid).size == (columns * 32 + (columns + 1) * 2, rows * 32 + (rows + 1) * 2)

    gif = tmp_path / "walk.gif"
    result = runner.invoke(
        app, ["interpolate", "--model", str(run), "--points", "3", "--steps", "4", "--out", str(gif)]
    )
    assert result.exit_code == 0, result.output
    animation = Image.open(gif)
    # 12 frames of 80 ms; GIF writers merge identical neighbours (an untrained generator's frames can round to the
    # same pixels), adding up their durations.
    durations = [frame.info["duration"] for frame in ImageSequence.Iterator(animation)]
    assert sum(durations) == 12 * 80 and animation.info.get("loop") == 0


def test_cli_requires_a_model_for_plain_folders(digits: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(digits), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--recipe" in result.output and "cgan" in result.output
