"""scripts/unpaired_benchmark.py: the layout, determinism, held-out photographs and the known answer (testB is the
filter of testA), at a tiny size. scikit-image is only in the dev extra, so the test is skipped without it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from translate.imageio import load_image

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "unpaired_benchmark.py"
FOLDERS = ("trainA", "trainB", "testA", "testB")


def benchmark() -> ModuleType:
    """The script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("unpaired_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def photos(folder: Path) -> set[str]:
    """The photographs a folder's crops came from, by their names (t0001-chelsea.png)."""
    return {path.stem.split("-", 1)[1] for path in folder.iterdir()}


def test_the_benchmark_is_unpaired_held_out_deterministic_and_knows_its_answer(tmp_path: Path) -> None:
    bench = benchmark()
    summary = bench.build(tmp_path / "one", size=16, train=9, test=6)
    bench.build(tmp_path / "two", size=16, train=9, test=6)
    assert set(summary.counts) == {"tone", "stylise"}
    for name, apply in bench.FILTERS.items():
        task = tmp_path / "one" / name
        assert summary.counts[name] == {"trainA": 9, "trainB": 9, "testA": 6, "testB": 6}
        for folder in FOLDERS:
            assert files(task / folder) == files(tmp_path / "two" / name / folder)  # the same bytes
        assert files(task / "trainA") == files(tmp_path / "one" / "tone" / "trainA")  # A is shared by the tasks
        # Held out: test crops come from photographs no training crop came from.
        training = photos(task / "trainA") | photos(task / "trainB")
        assert photos(task / "testA") == set(bench.HELD_OUT) and training <= set(bench.TRAINING)
        # The known answer: testB is exactly the filter of the same-named testA crop, and differs from it.
        assert sorted(p.name for p in (task / "testA").iterdir()) == sorted(p.name for p in (task / "testB").iterdir())
        for path in sorted((task / "testA").iterdir()):
            crop, truth = load_image(path), load_image(task / "testB" / path.name)
            assert crop.shape == (16, 16, 3) and np.array_equal(apply(crop), truth) and not np.array_equal(crop, truth)
        # Unpaired: no trainB image is the filtered twin of a trainA image.
        twins = {apply(load_image(path)).tobytes() for path in (task / "trainA").iterdir()}
        assert not twins & {load_image(path).tobytes() for path in (task / "trainB").iterdir()}
    assert "translate evaluate runs/tone --input" in bench.report(summary)


def test_the_script_has_help_and_refuses_to_mix_into_a_filled_folder(tmp_path: Path) -> None:
    shown = subprocess.run([sys.executable, str(SCRIPT), "make", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--filter" in shown.stdout
    (tmp_path / "tone").mkdir()
    (tmp_path / "tone" / "old.png").write_bytes(b"")
    with pytest.raises(SystemExit, match="not empty"):
        benchmark().build(tmp_path, size=16, filters=("tone",), train=3, test=3)
