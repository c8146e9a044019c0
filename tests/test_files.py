"""The one atomic writer: permissions, failures mid-write, and removal of what killed writers left behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from torch import nn
from typer.testing import CliRunner

from translate import files
from translate.cli import app
from translate.config import apply_overrides, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy.sampling import save_latents
from translate.imageio import save_image
from translate.recipes.cyclegan import CycleGAN, CycleGANConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits and locks")


def _save_tiny_checkpoint(path: Path, step: int = 1) -> None:
    checkpoint.save(path, recipe="test", config={}, step=step, modules={"net": nn.Linear(2, 2)})


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


WRITERS: dict[str, Callable[[Path], None]] = {
    "checkpoint": lambda path: _save_tiny_checkpoint(path / "step_00000001.safetensors"),
    "image": lambda path: save_image(path / "a.png", np.zeros((2, 2, 3), np.uint8)),
    "latents": lambda path: save_latents(path / "z.npy", np.zeros((1, 4), np.float32)),
    "bytes": lambda path: files.atomic_write(path / "b.bin", b"data"),
}


@posix
@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)], ids=["umask022", "umask077"])
def test_written_files_get_the_mode_of_any_new_file(
    tmp_path: Path, umask: Callable[[int], None], writer: str, mask: int, mode: int
) -> None:
    umask(mask)
    WRITERS[writer](tmp_path)
    (written,) = tmp_path.iterdir()
    assert written.stat().st_mode & 0o777 == mode


@posix
def test_copy_gets_the_mode_of_a_new_file_not_the_source(tmp_path: Path, umask: Callable[[int], None]) -> None:
    source = tmp_path / "private.bin"
    source.write_bytes(b"x" * 3_000_000)  # several copy chunks
    source.chmod(0o600)
    files.atomic_copy(source, tmp_path / "out" / "copy.bin")
    copy = tmp_path / "out" / "copy.bin"
    assert copy.read_bytes() == source.read_bytes()
    assert copy.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, error: type) -> None:
    path = tmp_path / "data.bin"
    files.atomic_write(path, b"old")
    with pytest.raises(error), files.atomic_writer(path) as handle:
        handle.write(b"half of the new")
        raise error
    assert path.read_bytes() == b"old"
    assert _names(tmp_path) == {"data.bin"}

    fresh = tmp_path / "sub" / "fresh.bin"
    with pytest.raises(RuntimeError), files.atomic_writer(fresh) as handle:
        handle.write(b"x")
        raise RuntimeError
    assert _names(tmp_path / "sub") == set()


@posix
def test_a_live_writers_temp_is_not_stale(tmp_path: Path) -> None:
    path = tmp_path / "slow.bin"
    with files.atomic_writer(path) as handle:
        (temp,) = tmp_path.iterdir()
        assert files.TEMP_NAME.fullmatch(temp.name)["target"] == "slow.bin"
        assert files.remove_stale_temps(tmp_path) == []  # it holds a lock on its temp
        handle.write(b"done")
    assert path.read_bytes() == b"done"
    assert _names(tmp_path) == {"slow.bin"}


LEFTOVERS = [
    ".step_00000002.safetensors.0123456789ab.tmp",  # this writer's, killed mid-save
    ".step_00000002.safetensors.k3j_x9a1.tmp",  # mkstemp's, from older versions
    "step_00000002.safetensors.tmp5e1f",  # safetensors' own
]
UNRELATED = ["step_00000001.safetensors", "notes.txt", ".keep.tmp", "step_00000003.safetensors.json"]


def _plant(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"leftover")


def test_next_checkpoint_save_removes_crash_leftovers(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "checkpoints"
    _plant(folder, LEFTOVERS + UNRELATED)
    _save_tiny_checkpoint(folder / "step_00000002.safetensors", step=2)
    assert _names(folder) == {*UNRELATED, "step_00000002.safetensors"}
    assert checkpoint.read(folder / "step_00000002.safetensors").step == 2


def test_run_start_removes_crash_leftovers(unpaired_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "run"
    _plant(run / "checkpoints", [*LEFTOVERS, "notes.txt"])
    _plant(run, [".config.json.0123456789ab.tmp", ".config.json.tmp", "mine.txt"])
    _plant(run / "previews", [".step_00000001.png.0123456789ab.tmp", ".keep.tmp"])
    tiny = ["--image-size", "32", "--set", "generator_channels=8", "--set", "discriminator_channels=8"]
    tiny += ["--set", "num_blocks=1", "--set", "num_workers=0"]
    args = ["train", str(unpaired_data), "--out", str(run.parent), "--name", "run", "--steps", "1", *tiny]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _names(run / "checkpoints") == {"notes.txt", "step_00000001.safetensors"}
    assert {".config.json.0123456789ab.tmp", ".config.json.tmp"}.isdisjoint(_names(run))
    assert "mine.txt" in _names(run) and "config.json" in _names(run)
    assert _names(run / "previews") == {".keep.tmp", "step_00000001.png"}


def test_next_apply_removes_stale_temps_of_its_outputs_only(tmp_path: Path) -> None:
    config = apply_overrides(
        CycleGANConfig(),
        {
            "data.image_size": 32,
            "data.channels": 3,
            "generator_channels": 8,
            "discriminator_channels": 8,
            "num_blocks": 1,
            "train.steps": 1,
        },
    )
    model = tmp_path / "model.safetensors"
    modules = CycleGAN(config, Engine("cpu")).modules()
    checkpoint.save(model, recipe="cyclegan", config=to_dict(config), step=1, modules=modules)
    photos, out = tmp_path / "photos", tmp_path / "out"
    save_image(photos / "sub" / "a.png", np.full((20, 24, 3), 90, np.uint8))
    _plant(photos / "sub", [".a.png.0123456789ab.tmp"])  # an input folder is never touched
    _plant(out / "sub", [".a.png.0123456789ab.tmp", ".other.png.0123456789ab.tmp", "notes.txt"])

    args = ["apply", str(photos), "--model", str(model), "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert _names(out / "sub") == {"a.png", ".other.png.0123456789ab.tmp", "notes.txt"}
    assert _names(photos / "sub") == {"a.png", ".a.png.0123456789ab.tmp"}
