"""Sampling: latents, truncation, slerp/lerp, walks, label handling and seeds, with a fake backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.deploy import sampling
from translate.description import GeneratorInput, ModelDescription
from translate.errors import SamplingError


class FakeSampler:
    """Images whose pixels encode the latent's first entry and the label, so outputs can be checked."""

    description = "fake"

    def __init__(self, classes: list[str] | None = None) -> None:
        inputs = [GeneratorInput("z", "normal", (8,))]
        if classes:
            inputs.append(GeneratorInput("label", "class", (), tuple(classes)))
        self.model = ModelDescription("fake", "generator", "generate", 1, 4, inputs=tuple(inputs))
        self.num_classes = len(classes or [])

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        z = feeds["z"]
        value = np.tanh(z[:, 0]) if "label" not in feeds else feeds["label"] / 10.0
        return np.broadcast_to(value[:, None, None, None], (len(z), 1, 4, 4)).astype(np.float32)

    def embed(self, labels: np.ndarray) -> np.ndarray:
        return np.eye(max(self.num_classes, 1), dtype=np.float32)[labels]

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        value = embedding @ np.arange(self.num_classes, dtype=np.float32) / 10.0
        return np.broadcast_to(value[:, None, None, None], (len(feeds["z"]), 1, 4, 4)).astype(np.float32)


def test_latents_are_seeded_and_truncated() -> None:
    a, b = sampling.latents(16, 8, seed=1), sampling.latents(16, 8, seed=1)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, sampling.latents(16, 8, seed=2))
    t = sampling.latents(500, 8, seed=0, truncation=0.5)
    assert np.abs(t).max() <= 0.5 and np.abs(t).mean() > 0.2
    with pytest.raises(SamplingError):
        sampling.latents(1, 8, seed=0, truncation=0)


def test_slerp_endpoints_and_norms() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(100).astype(np.float32), rng.standard_normal(100).astype(np.float32)
    t = np.linspace(0, 1, 11)
    path = sampling.slerp(a, b, t)
    assert np.allclose(path[0], a, atol=1e-5) and np.allclose(path[-1], b, atol=1e-5)
    norms = np.linalg.norm(path, axis=1)
    # slerp keeps norms between the endpoints' (≈ √100); the straight line sags in the middle
    assert norms.min() > 0.95 * min(np.linalg.norm(a), np.linalg.norm(b))
    assert np.linalg.norm(sampling.lerp(a, b, np.array([0.5]))[0]) < 0.8 * norms[5]
    assert np.allclose(sampling.slerp(a, a, t), a, atol=1e-6)  # parallel vectors fall back to lerp


def test_walk_is_closed_and_sized() -> None:
    points = sampling.latents(3, 4, seed=0)
    path = sampling.walk(points, 5, "lerp")
    assert path.shape == (15, 4)
    assert np.allclose(path[0], points[0]) and np.allclose(path[5], points[1]) and np.allclose(path[10], points[2])
    with pytest.raises(SamplingError, match="slerp or lerp"):
        sampling.walk(points, 5, "cubic")


def test_labels_by_name_index_and_spread() -> None:
    names = ["cat", "dog", "owl"]
    assert sampling.parse_label("dog", names) == 1 and sampling.parse_label("2", names) == 2
    with pytest.raises(SamplingError, match="cat, dog, owl"):
        sampling.parse_label("cow", names)
    assert sampling.spread_labels(6, 3).tolist() == [0, 0, 1, 1, 2, 2]


def test_sample_grid_files_and_latent_round_trip(tmp_path: Path) -> None:
    sampler = FakeSampler()
    saved = tmp_path / "z.npy"
    [grid] = sampling.run_sample(sampler, n=5, out=tmp_path / "g.png", seed=4, save_latents_file=saved)
    assert Image.open(grid).size == (3 * 4 + 4 * 2, 2 * 4 + 3 * 2)
    files = sampling.run_sample(sampler, n=0 + 5, out=tmp_path / "each/", latents_file=saved)
    assert len(files) == 5
    again = [np.array(Image.open(p)) for p in files]
    z = np.load(saved)
    expected = np.rint((np.tanh(z[:, 0]) + 1) * 127.5).astype(np.uint8)
    assert [int(img.flat[0]) for img in again] == expected.tolist()


def test_conditional_sampling_uses_the_requested_class(tmp_path: Path) -> None:
    sampler = FakeSampler(["a", "b", "c"])
    files = sampling.run_sample(sampler, n=3, out=tmp_path / "out/", label="c")
    assert {int(np.array(Image.open(p)).flat[0]) for p in files} == {int(np.rint((0.2 + 1) * 127.5))}
    with pytest.raises(SamplingError, match="conditional"):
        sampling.run_sample(FakeSampler(), n=1, out=tmp_path / "x.png", label="a")


def test_interpolate_png_strip_and_class_walk(tmp_path: Path) -> None:
    out = sampling.run_interpolate(FakeSampler(), out=tmp_path / "w.png", points=3, steps=4)
    assert Image.open(out).size == (4 * 4 + 5 * 2, 3 * 4 + 4 * 2)
    gif = sampling.run_interpolate(FakeSampler(["a", "b"]), out=tmp_path / "c.gif", labels="a,b", steps=2)
    assert Image.open(gif).n_frames == 4
    with pytest.raises(SamplingError, match=r"\.gif"):
        sampling.run_interpolate(FakeSampler(), out=tmp_path / "w.jpg")


def test_latent_arithmetic_averages_each_file(tmp_path: Path) -> None:
    for name, value in (("a", 1.0), ("b", 3.0), ("c", 0.5)):
        sampling.save_latents(tmp_path / f"{name}.npy", np.full((4, 8), value, np.float32))
    result = sampling.arithmetic(f"{tmp_path / 'a.npy'}-{tmp_path / 'b.npy'}+{tmp_path / 'c.npy'}")
    assert np.allclose(result, -1.5)
    with pytest.raises(SamplingError, match="needs"):
        sampling.load_latents(tmp_path / "a.npy", dim=5)
