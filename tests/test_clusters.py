"""cGAN on clusters of unlabelled images: the clustering, the model's weighted cluster code, resume, CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.data import clusters
from translate.data.clusters import cluster_images
from translate.data.folders import scan_domain
from translate.deploy.sampling import draw
from translate.description import GeneratorInput, ModelDescription
from translate.errors import ConfigError, DataError
from translate.recipes import RECIPES
from translate.training.launch import complete_config
from translate.training.loop import Trainer

SIZES = {"vertical": 8, "horizontal": 6, "diagonal": 4}  # images per kind: clusters of distinct sizes


@pytest.fixture
def bars(tmp_path: Path) -> Path:
    """One flat folder of 18 unlabelled 28 px images of three kinds (8 vertical bars, 6 horizontal, 4 diagonal)."""
    root = tmp_path / "bars"
    root.mkdir()
    rng = np.random.default_rng(0)
    for kind, count in SIZES.items():
        for i in range(count):
            image = np.zeros((28, 28), np.uint8)
            if kind == "vertical":
                image[:, 10 + i % 4 : 16 + i % 4] = 255
            elif kind == "horizontal":
                image[10 + i % 4 : 16 + i % 4, :] = 255
            else:
                np.fill_diagonal(image, 255)
                np.fill_diagonal(image[1:], 255)
            image = np.clip(image.astype(int) + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / f"{kind}{i}.png")
    return root


def test_clustering_finds_the_three_kinds_largest_first(bars: Path) -> None:
    domain = scan_domain(bars, None)
    labels, shares = cluster_images(domain, 3, image_size=32, seed=0)
    kinds = [path.stem.rstrip("0123456789") for path in domain.paths]
    # every kind is one cluster, numbered by size: vertical (8) is 0, horizontal (6) 1, diagonal (4) 2
    expected = {"vertical": 0, "horizontal": 1, "diagonal": 2}
    assert labels.tolist() == [expected[k] for k in kinds]
    assert shares == pytest.approx((8 / 18, 6 / 18, 4 / 18))
    again, _ = cluster_images(domain, 3, image_size=32, seed=0)
    assert np.array_equal(labels, again)


def test_clusters_are_refused_beyond_the_distinct_images(tmp_path: Path, bars: Path) -> None:
    with pytest.raises(DataError, match="from 2 to 18 clusters"):
        cluster_images(scan_domain(bars, None), 19, image_size=32, seed=0)
    same = tmp_path / "same"
    same.mkdir()
    for i in range(5):
        Image.fromarray(np.full((28, 28), 7, np.uint8)).save(same / f"{i}.png")
    with pytest.raises(DataError, match="only 1 of its images are distinct, too few for 3 clusters"):
        cluster_images(scan_domain(same, None), 3, image_size=32, seed=0)
    # as many clusters as distinct images: one image each
    labels, shares = cluster_images(scan_domain(bars, None), 18, image_size=32, seed=0)
    assert sorted(labels.tolist()) == list(range(18)) and shares == pytest.approx([1 / 18] * 18)


def test_images_beyond_the_fitted_subset_join_their_neighbours_cluster(
    bars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain = scan_domain(bars, None)
    everything, _ = cluster_images(domain, 3, image_size=32, seed=0)
    monkeypatch.setattr(clusters, "FIT_LIMIT", 12)  # 6 of the 18 images are left to the neighbours' vote
    monkeypatch.setattr(clusters, "NEIGHBOURS", 3)
    subset, shares = cluster_images(domain, 3, image_size=32, seed=0)
    assert np.array_equal(subset, everything)
    assert shares == pytest.approx((8 / 18, 6 / 18, 4 / 18))
    with pytest.raises(DataError, match="from 2 to 12 clusters"):  # each cluster needs a fitted image
        cluster_images(domain, 13, image_size=32, seed=0)


def test_weighted_code_draws_by_its_weights_and_survives_onnx_metadata() -> None:
    code = GeneratorInput("cluster", "categorical", (), ("0", "1", "2"), weights=(0.75, 0.25, 0.0))
    values = draw(code, 20_000, np.random.default_rng(0))
    share = np.bincount(values, minlength=3) / len(values)
    assert abs(share[0] - 0.75) < 0.02 and share[2] == 0
    model = ModelDescription(
        recipe="cgan", kind="generator", direction="generate", channels=1, image_size=32,
        inputs=(GeneratorInput("z", "normal", (8,)), code),
    )  # fmt: skip
    props = model.to_metadata()
    assert props["format_version"] == "4"
    assert ModelDescription.from_metadata(props, "x.onnx").inputs[1] == code
    unweighted = replace(model, inputs=(model.inputs[0], replace(code, weights=())))
    assert unweighted.to_metadata()["format_version"] == "3"  # readable by versions before weights
    with pytest.raises(ValueError, match="one probability per value"):
        GeneratorInput("cluster", "categorical", (), ("0", "1"), weights=(0.5, 0.6))


def _recipe(data: Path, steps: int = 4, **overrides: object):
    spec = RECIPES["cgan"]
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
            "clusters": 3,
            **overrides,
        },
    )
    training = spec.make_data(config, data)
    config = complete_config(spec, config, training)
    return spec.build(config, Engine("cpu")), training, Engine("cpu")


def test_cluster_cgan_declares_a_weighted_code_and_resumes_exactly(bars: Path, tmp_path: Path) -> None:
    straight, training, engine = _recipe(bars)
    assert training.class_names == ("0", "1", "2")
    last = Trainer(straight, training, engine, tmp_path / "a", progress=False).fit()
    saved = checkpoint.read(last).meta["config"]
    assert saved["clusters"] == 3 and saved["cluster_shares"] == pytest.approx([8 / 18, 6 / 18, 4 / 18])
    z, cluster = RECIPES["cgan"].generator_inputs(straight.config)
    assert (z.kind, cluster.name, cluster.kind) == ("normal", "cluster", "categorical")
    assert cluster.weights == straight.config.cluster_shares

    first, training, engine = _recipe(bars)
    Trainer(first, training, engine, tmp_path / "b", progress=False).fit(stop_at=2)
    resumed, training, engine = _recipe(bars)
    trainer = Trainer(resumed, training, engine, tmp_path / "b", progress=False)
    end = trainer.fit(trainer.restore(checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "b"))))
    a, b = load_file(str(last)), load_file(str(end))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_data_is_refused_on_resume(bars: Path) -> None:
    spec = RECIPES["cgan"]
    config = apply_overrides(spec.config_class(), {"data.image_size": 32, "clusters": 3})
    with pytest.raises(DataError, match="no longer fall into this run's clusters"):
        spec.make_data(replace(config, cluster_shares=(0.5, 0.25, 0.25)), bars)
    with pytest.raises(ConfigError, match="one share per cluster"):
        replace(config, cluster_shares=(0.5, 0.5, 0.5))


def test_cli_trains_on_clusters_samples_a_cluster_and_exports(bars: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "runs"
    tiny = ["--image-size", "32", "--batch-size", "4", "--set", "generator_channels=8"]
    tiny += ["--set", "discriminator_channels=8"]
    args = ["train", str(bars), "--recipe", "cgan", "--steps", "2", "--set", "clusters=3", "--out", str(out), *tiny]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "18 images in 3 clusters" in result.output
    run = out / "bars"
    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", "--model", str(run), "--n", "4", "--code", "cluster=2", "--out", str(grid)])
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
    onnx = tmp_path / "bars.onnx"
    result = runner.invoke(app, ["export", str(run), "--out", str(onnx)])
    assert result.exit_code == 0, result.output
    assert "parity fp32" in result.output
    result = runner.invoke(app, ["sample", "--model", str(onnx), "--n", "4", "--out", str(tmp_path / "onnx.png")])
    assert result.exit_code == 0, result.output
