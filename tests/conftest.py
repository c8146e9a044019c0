"""Shared fixtures: a local HTTP server for download tests, and tiny synthetic image datasets."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from httpserver import Server, serve
from PIL import Image


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A local HTTP server over tmp_path/www, with TRANSLATE_MIRROR and TRANSLATE_HOME pointing at it."""
    with serve(tmp_path / "www") as srv:
        monkeypatch.setenv("TRANSLATE_MIRROR", srv.url + "/")
        monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path / "home"))
        yield srv


def make_shapes(folder: Path, count: int, *, shape: str, size: int = 40, seed: int = 0) -> list[Path]:
    """`count` RGB images of a coloured circle or square on white: two easy, distinct domains."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    paths = []
    for i in range(count):
        cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
        r = int(rng.integers(size // 8, size // 4))
        mask = (
            (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r if shape == "circle" else (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
        )
        image = np.full((size, size, 3), 255, np.uint8)
        image[mask] = rng.integers(0, 200, 3, dtype=np.uint8)
        path = folder / f"{shape}_{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def write_png_declaring(path: Path, width: int, height: int) -> Path:
    """A few-hundred-byte PNG whose header declares width × height px (its pixel data is for 8 × 8): a stand-in for
    a decompression bomb that costs nothing unless something decodes it."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # The IHDR chunk follows the 8-byte signature: length (4), type (4), width and height (4 each), ..., CRC.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(data[12:29]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a whole test module, restored afterwards. Tiny models gain nothing from more, and on
    a busy CI machine OpenMP threads waiting for a descheduled sibling can make every forward pass take ~0.4 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def unpaired_data(tmp_path: Path) -> Path:
    """DATA/trainA (circles), trainB (squares), testA, testB at 40 px."""
    root = tmp_path / "shapes"
    make_shapes(root / "trainA", 6, shape="circle", seed=1)
    make_shapes(root / "trainB", 5, shape="square", seed=2)
    make_shapes(root / "testA", 2, shape="circle", seed=3)
    make_shapes(root / "testB", 2, shape="square", seed=4)
    return root
