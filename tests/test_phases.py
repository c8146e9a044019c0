"""Training phases: the phase and the sample counter as functions of the step, each phase's batch and image size
reaching the recipe, and exact resume mid-phase and right at a phase boundary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from conftest import make_shapes
from safetensors.torch import load_file
from torch import Tensor

from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.data.folders import to_model_range
from translate.errors import ConfigError
from translate.recipes import RECIPES
from translate.recipes.base import Phase, Recipe, TrainingData, phase_at, phase_starts, single_phase
from translate.training.launch import complete_config
from translate.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 3 steps at the config's batch (4), then batch 2 to the end: a boundary the counter must carry across.
TWO_BATCHES = (Phase(steps=3), Phase(batch_size=2))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phases") / "shapes"
    make_shapes(root, 10, shape="circle")  # 40 px RGB
    return root


def _dcgan(images: Path, steps: int = 6) -> tuple[Recipe, TrainingData, Engine]:
    spec = RECIPES["dcgan"]
    config = apply_overrides(
        spec.config_class(),
        {
            "data.image_size": 32,
            "train.batch_size": 4,
            "generator_channels": 8,
            "discriminator_channels": 8,
            "latent_dim": 8,
            "train.steps": steps,
            "num_workers": 0,
            "log_every": 2,
            "preview_every": 1000,
            "checkpoint_every": 1000,
        },
    )
    training = spec.make_data(config, images)
    config = complete_config(spec, config, training)
    engine = Engine("cpu")
    return spec.build(config, engine), training, engine


def _trainer(images: Path, run_dir: Path, phases: Sequence[Phase], steps: int = 6) -> Trainer:
    recipe, training, engine = _dcgan(images, steps)
    return Trainer(recipe, training, engine, run_dir, progress=False, phases=phases)


def _resume(trainer: Trainer) -> Path:
    return trainer.fit(trainer.restore(checkpoint.read(checkpoint.latest_checkpoint(trainer.run_dir))))


def test_images_become_steps_with_the_global_batch() -> None:
    assert Phase(steps=5).length(4) == 5
    assert Phase().length(4) is None  # open-ended
    assert Phase(images=10).length(4) == 3  # 10 / 4, rounded up
    assert Phase(images=10).length(4, world_size=2) == 2  # 10 / (4 × 2)
    assert Phase(images=10, batch_size=2).length(4) == 5  # the phase's batch, not the config's
    assert Phase(images=8).length(4) == 2  # exact: no extra step


def test_phase_and_counter_are_functions_of_the_step(images: Path, tmp_path: Path) -> None:
    phases = (Phase(steps=3), Phase(images=10, batch_size=2), Phase())
    assert phase_starts(phases, 4) == (0, 3, 8)
    assert phase_starts(phases, 4, world_size=2) == (0, 3, 6)  # 10 images at 2 × 2 processes: 3 steps
    assert [phase_at(step, (0, 3, 8)) for step in range(11)] == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]

    trainer = _trainer(images, tmp_path, phases, steps=10)
    assert [trainer.phase(step) for step in (0, 2, 3, 7, 8, 9)] == [0, 0, 1, 1, 2, 2]
    # 3 steps × 4, then 5 × 2, then × 4 again: the counter after each step count.
    assert [trainer._samples(step) for step in (0, 1, 3, 4, 8, 10)] == [0, 4, 12, 14, 22, 30]
    # Resumed at step 5 from a checkpoint whose counter says 100 (e.g. written under another number of
    # processes): the counter continues from it, step by step in each phase's batch.
    trainer._resumed_samples = (5, 100)
    assert [trainer._samples(step) for step in (5, 8, 10)] == [100, 106, 114]


def test_every_recipe_but_progressive_growing_has_one_phase() -> None:
    for spec in RECIPES.values():
        if spec.name != "progan":  # its phases, one or two per resolution: tests/test_progan.py
            assert spec.phases(spec.config_class()) == single_phase(None) == (Phase(),), spec.name


def test_bad_phases_are_refused(images: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        Phase(steps=3, images=12)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        Phase(batch_size=0)
    with pytest.raises(ConfigError, match="only the last phase may be open-ended"):
        phase_starts((Phase(), Phase(steps=2)), 4)
    with pytest.raises(ConfigError, match=r"the phases end after 5 steps but train\.steps is 6"):
        _trainer(images, tmp_path, (Phase(steps=3), Phase(steps=2)))
    recipe, training, engine = _dcgan(images)
    training.at_size = None  # data of one size, as cyclegan's and pix2pix's
    with pytest.raises(ConfigError, match=r"phase 1 trains at 16 px.*sets no at_size"):
        Trainer(recipe, training, engine, tmp_path, progress=False, phases=(Phase(steps=3), Phase(image_size=16)))


class Recording:
    """A dcgan that keeps every batch the trainer hands it instead of training on it (its networks are built for
    32 px, and a phase here shows it 16 px), so the test sees exactly what a phased recipe would receive."""

    def __init__(self, inner: Recipe) -> None:
        self.inner, self.name, self.config = inner, inner.name, inner.config
        self.batches_per_step = inner.batches_per_step
        self.seen: list[Tensor] = []

    def train_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        self.seen.append(batch["image"])
        return {"mean": batch["image"].mean()}

    def __getattr__(self, name: str) -> object:  # preview, modules, optimizers, extra state: the dcgan's
        return getattr(self.inner, name)


def test_each_phase_gets_its_batch_and_image_size(images: Path, tmp_path: Path) -> None:
    phases = (Phase(steps=3, image_size=16), Phase(image_size=32, batch_size=2))
    recipe, training, engine = _dcgan(images)
    recording = Recording(recipe)
    Trainer(recording, training, engine, tmp_path / "straight", progress=False, phases=phases).fit()
    assert [tuple(b.shape) for b in recording.seen] == [(4, 3, 16, 16)] * 3 + [(2, 3, 32, 32)] * 3

    # Steps 0-2 read counters 0-11 at 16 px, steps 3-5 counters 12-17 at 32 px: the same stream, resized.
    assert training.at_size is not None
    small = training.at_size(16)
    expected = [[small[c] for c in range(4 * k, 4 * k + 4)] for k in range(3)]
    expected += [[training.dataset[c] for c in range(12 + 2 * k, 14 + 2 * k)] for k in range(3)]
    for seen, samples in zip(recording.seen, expected, strict=True):
        assert torch.equal(seen, to_model_range({"image": torch.stack([s["image"] for s in samples])})["image"])

    # A run resumed mid-way through the second phase is shown the same batches from there on.
    first, training, engine = _dcgan(images)
    Trainer(Recording(first), training, engine, tmp_path / "resumed", progress=False, phases=phases).fit(stop_at=4)
    second, training, engine = _dcgan(images)
    resumed = Recording(second)
    _resume(Trainer(resumed, training, engine, tmp_path / "resumed", progress=False, phases=phases))
    assert len(resumed.seen) == 2 and all(map(torch.equal, resumed.seen, recording.seen[4:]))

    lines = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    # log_every 2, and the first phase's last step: each record covers steps of one phase only.
    assert [(line["step"], line["phase"]) for line in lines] == [(2, 0), (3, 0), (4, 1), (6, 1)]


def test_one_phase_writes_no_phase(images: Path, tmp_path: Path) -> None:
    _trainer(images, tmp_path, single_phase(None), steps=2).fit()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2] and "phase" not in lines[0]


@pytest.fixture(scope="module")
def straight(images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tensor]:
    """The weights, optimiser moments and RNG state after 6 uninterrupted dcgan steps through TWO_BATCHES."""
    return load_file(str(_trainer(images, tmp_path_factory.mktemp("straight"), TWO_BATCHES).fit()))


@pytest.mark.parametrize(("stop", "samples"), [(2, 8), (3, 12), (4, 14)])  # mid-phase, the boundary, after it
def test_resume_is_exact_across_a_phase_boundary(
    stop: int, samples: int, straight: dict[str, Tensor], images: Path, tmp_path: Path
) -> None:
    stopped = _trainer(images, tmp_path, TWO_BATCHES).fit(stop_at=stop)
    assert checkpoint.read(stopped).meta["info"]["samples"] == samples  # 4 per step, then 2
    resumed = load_file(str(_resume(_trainer(images, tmp_path, TWO_BATCHES))))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
