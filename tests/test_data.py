"""Training data: discovery, skipping bad files, deterministic per-counter sampling and jitter."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png_declaring
from rich.console import Console

from translate.data.folders import UnpairedDataset, pick, scan_domain, to_model_range, unpaired_folders
from translate.errors import DataError
from translate.imageio import to_float


def test_pick_visits_every_image_once_per_pass() -> None:
    first = [pick(0, 0, c, 7) for c in range(7)]
    second = [pick(0, 0, c, 7) for c in range(7, 14)]
    assert sorted(first) == sorted(second) == list(range(7))
    assert first != second  # a fresh order each pass
    assert [pick(0, 0, c, 7) for c in range(7)] == first  # a pure function of (seed, stream, counter)


def test_scan_skips_corrupt_files_with_a_warning(unpaired_data: Path) -> None:
    folder = unpaired_data / "trainA"
    (folder / "nested").mkdir()
    (folder / "nested" / "truncated.png").write_bytes((folder / "circle_000.png").read_bytes()[:60])
    (folder / "readme.txt").write_text("not an image")
    console = Console(record=True, width=200)
    domain = scan_domain(folder, 3, console=console)
    text = console.export_text()
    assert len(domain) == 6 and "truncated.png" in text and "skipped 1" in text
    assert domain.image(0).shape == (40, 40, 3)


def test_folder_layout_errors(tmp_path: Path, unpaired_data: Path) -> None:
    with pytest.raises(DataError, match="trainA"):
        unpaired_folders(tmp_path)
    with pytest.raises(DataError, match="both --domain-a and --domain-b"):
        unpaired_folders(None, tmp_path, None)
    folders = unpaired_folders(unpaired_data)
    assert folders.test_a == unpaired_data / "testA"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no usable image"):
        scan_domain(tmp_path / "empty", 3)


def test_samples_are_deterministic_and_jittered(unpaired_data: Path) -> None:
    a = scan_domain(unpaired_data / "trainA", 3)
    b = scan_domain(unpaired_data / "trainB", 1)
    data = UnpairedDataset(a, b, image_size=32, load_size=36, flip=True, seed=0)
    item = data[5]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (1, 32, 32)
    assert item["A"].dtype == torch.uint8  # workers ship bytes; to_model_range scales them on the device
    scaled = to_model_range(item)["A"]
    assert scaled.dtype == torch.float32 and -1 <= float(scaled.min()) <= float(scaled.max()) <= 1
    assert torch.equal(scaled, torch.from_numpy(to_float(item["A"].permute(1, 2, 0).numpy())))
    again = UnpairedDataset(a, b, image_size=32, load_size=36, flip=True, seed=0)[5]
    assert torch.equal(item["A"], again["A"]) and torch.equal(item["B"], again["B"])
    # The same source image seen in two passes gets different crops/flips.
    n = len(a)
    index = pick(0, 0, 0, n)
    later = next(c for c in range(n, 2 * n) if pick(0, 0, c, n) == index)
    assert not torch.equal(data[0]["A"], data[later]["A"])


def test_no_flip_keeps_orientation(tmp_path: Path) -> None:
    from PIL import Image

    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = 255  # white left half
    for name in ("trainA", "trainB"):
        (tmp_path / name).mkdir()
        Image.fromarray(image).save(tmp_path / name / "half.png")
    a = scan_domain(tmp_path / "trainA", 3)
    data = UnpairedDataset(a, a, image_size=32, load_size=32, flip=False, seed=0)
    for counter in range(8):
        left = data[counter]["A"][:, :, :16]
        assert float(left.float().mean()) > 0.9 * 255


def test_channels_follow_the_data(tmp_path: Path, unpaired_data: Path) -> None:
    from PIL import Image

    (tmp_path / "gray").mkdir()
    for i in range(3):
        Image.new("L", (20, 20), 40 * i).save(tmp_path / "gray" / f"{i}.png")
    Image.new("RGB", (20, 20), (90, 90, 90)).save(tmp_path / "gray" / "rgb_but_gray.jpg")
    gray = scan_domain(tmp_path / "gray", None)
    assert gray.channels == 1 and gray.image(0).shape == (20, 20, 1)
    assert gray.with_channels(3).image(0).shape == (20, 20, 3)
    color = scan_domain(unpaired_data / "trainA", None)
    assert color.channels == 3


def test_scan_skips_an_image_over_the_pixel_limit_without_decoding_it(unpaired_data: Path) -> None:
    folder = unpaired_data / "trainA"
    bomb = write_png_declaring(folder / "bomb.png", 12000, 12000)  # 144 Mpx, decoded it would take 432 MB
    console = Console(record=True, width=200)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domain = scan_domain(folder, 3, console=console)

    text = console.export_text()
    assert caught == []
    assert len(domain) == 6 and bomb not in domain.paths
    assert f"skipping {bomb}: 12000×12000 px is over the 64 Mpx limit" in text and "skipped 1" in text
