"""Behavioural tests for translate.imageio (CPU only, tiny images written to tmp_path)."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import write_png_declaring
from PIL import Image

from translate.errors import ImageDecodeError, ImageTooLargeError
from translate.imageio import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    find_images,
    image_size,
    load_image,
    make_grid,
    pad_to_multiple,
    resize,
    save_image,
    to_float,
    to_uint8,
    walk_images,
)

RNG = np.random.default_rng(0)


def _rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- find_images


def test_find_images_recursive_case_insensitive_sorted_and_filtered(tmp_path: Path) -> None:
    for rel in [
        "a.png",
        "B.JPG",
        "sub/c.Jpeg",
        "sub/x.TIFF",
        "sub/deeper/d.webp",
        "sub/deeper/e.bmp",
        ".hidden.png",
        ".git/inside_hidden_dir.png",
        "sub/.cache/f.png",
        "notes.txt",
        "sub/model.onnx",
        "sub/.out.png.1234abcd.tmp",  # what save_image's temp files look like
    ]:
        _touch(tmp_path / rel)

    found = find_images(tmp_path)

    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["B.JPG", "a.png", "sub/c.Jpeg", "sub/deeper/d.webp", "sub/deeper/e.bmp", "sub/x.TIFF"]
    assert all(p.is_absolute() == tmp_path.is_absolute() for p in found)
    assert {p.suffix.lower() for p in found} <= IMAGE_EXTENSIONS


def test_find_images_is_deterministic_and_survives_symlink_loops(tmp_path: Path) -> None:
    _touch(tmp_path / "z.png")
    _touch(tmp_path / "sub" / "a.png")
    try:
        (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")
    first = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in first] == ["sub/a.png", "z.png"]
    assert find_images(tmp_path) == first


def test_find_images_hidden_root_itself_is_walked(tmp_path: Path) -> None:
    root = tmp_path / ".dataset"
    _touch(root / "img.png")
    assert find_images(root) == [root / "img.png"]


def test_find_images_file_root(tmp_path: Path) -> None:
    image = _touch(tmp_path / "Photo.JPEG")
    assert find_images(image) == [image]

    text = _touch(tmp_path / "readme.md")
    with pytest.raises(ValueError, match=r"readme\.md"):
        find_images(text)


def test_find_images_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        find_images(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "\n" not in message


# --------------------------------------------------------------------------- load_image / image_size


def test_load_rgb_png_round_trips_exactly(tmp_path: Path) -> None:
    pixels = _rgb(5, 7)
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(pixels))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, pixels)
    assert image_size(path) == (7, 5)


@pytest.mark.parametrize("channels", [1, 3])
def test_loaded_and_resized_arrays_are_writable(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "w.png"
    path.write_bytes(_png_bytes(_rgb(4, 4)))
    out = load_image(path, channels=channels)
    out[0, 0, 0] = 1  # in-place augmentation must not hit a read-only PIL buffer
    small = resize(out, (2, 2))
    small[0, 0, 0] = 1


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_exif_orientation_6_rotates(tmp_path: Path, fmt: str, suffix: str) -> None:
    # Stored 2 rows x 3 columns; orientation 6 means "rotate 90 degrees clockwise to display".
    stored = np.zeros((2, 3, 3), dtype=np.uint8)
    stored[0, 0] = (255, 0, 0)  # top-left red
    stored[0, 2] = (0, 255, 0)  # top-right green
    stored[1, 0] = (0, 0, 255)  # bottom-left blue
    if fmt == "JPEG":
        # 16x16 blocks (one chroma-subsampled MCU each) keep their colour through JPEG at their centres.
        stored = np.kron(stored, np.ones((16, 16, 1), dtype=np.uint8))
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / f"rot{suffix}"
    image.save(path, format=fmt, exif=exif.tobytes(), **({"quality": 100} if fmt == "JPEG" else {}))

    out = load_image(path)

    h, w = stored.shape[:2]
    assert out.shape == (w, h, 3)
    assert image_size(path) == (h, w)  # (width, height) after rotation
    expected = np.rot90(stored, k=-1)  # clockwise
    if fmt == "PNG":
        np.testing.assert_array_equal(out, expected)
        # Spelled out: the stored top-left pixel is now top-right, stored top-right is bottom-right.
        assert tuple(out[0, -1]) == (255, 0, 0)
        assert tuple(out[-1, -1]) == (0, 255, 0)
        assert tuple(out[0, 0]) == (0, 0, 255)
    else:
        centres = (slice(8, None, 16), slice(8, None, 16))
        assert np.abs(out[centres].astype(int) - expected[centres].astype(int)).max() < 40


def test_rgba_transparent_pixels_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array(
        [[[255, 0, 0, 0], [0, 0, 0, 255]], [[0, 0, 0, 128], [10, 20, 30, 255]]],
        dtype=np.uint8,
    )
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)

    out = load_image(path)

    assert out.shape == (2, 2, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)  # fully transparent red -> white, not red or black
    assert tuple(out[0, 1]) == (0, 0, 0)
    assert all(abs(int(v) - 127) <= 1 for v in out[1, 0])  # half-transparent black -> mid grey
    assert tuple(out[1, 1]) == (10, 20, 30)
    assert load_image(path, channels=1)[0, 0, 0] == 255


def test_palette_image_and_palette_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (2, 2))
    image.putpalette([0, 0, 0, 200, 10, 20, 5, 150, 250] + [0] * (256 * 3 - 9))
    image.putdata([0, 1, 2, 1])  # row-major: (0,0)=0 (0,1)=1 (1,0)=2 (1,1)=1
    plain = tmp_path / "pal.png"
    image.save(plain)
    assert Image.open(plain).mode == "P"

    out = load_image(plain)
    np.testing.assert_array_equal(out[0, 1], [200, 10, 20])
    np.testing.assert_array_equal(out[1, 0], [5, 150, 250])
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])

    keyed = tmp_path / "pal_trns.png"
    image.save(keyed, transparency=1)  # palette index 1 is transparent
    out = load_image(keyed)
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(out[1, 0], [5, 150, 250])


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    wide = np.array([[0, 32896, 65535], [257, 1000, 65280]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode.startswith("I")

    out = load_image(path)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    grey = out[:, :, 0]
    np.testing.assert_array_equal(out[:, :, 1], grey)
    assert grey[0, 0] == 0
    assert abs(int(grey[0, 1]) - 128) <= 1
    assert grey[0, 2] == 255
    assert grey[1, 0] == 1
    assert grey[1, 1] == 4  # clipping would give 255 here
    assert grey[1, 2] == 254
    assert load_image(path, channels=1).shape == (2, 3, 1)


def test_channels_1_gives_luminance(tmp_path: Path) -> None:
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [255, 255, 255]]], dtype=np.uint8)
    path = tmp_path / "c.png"
    Image.fromarray(pixels).save(path)
    out = load_image(path, channels=1)
    assert out.shape == (1, 3, 1) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(pixels).convert("L"))
    np.testing.assert_array_equal(out[:, :, 0], expected)
    assert out[0, 1, 0] > out[0, 0, 0]  # green is brighter than red in luma
    assert out[0, 2, 0] == 255
    with pytest.raises(ValueError):
        load_image(path, channels=4)


def test_grey_image_as_rgb_and_cmyk(tmp_path: Path) -> None:
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    gpath = tmp_path / "g.png"
    Image.fromarray(grey).save(gpath)
    out = load_image(gpath)
    assert out.shape == (2, 3, 3)
    for k in range(3):
        np.testing.assert_array_equal(out[:, :, k], grey)

    cpath = tmp_path / "c.tif"
    Image.new("CMYK", (4, 2), (0, 0, 0, 0)).save(cpath)
    assert load_image(cpath).shape == (2, 4, 3)
    assert load_image(cpath, channels=1).shape == (2, 4, 1)


def test_truncated_png_raises_decode_error_naming_file(tmp_path: Path) -> None:
    data = _png_bytes(_rgb(64, 64))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert info.value.path == path


def test_text_file_named_jpg_raises_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_text("definitely not a jpeg\n")
    with pytest.raises(ImageDecodeError, match=r"fake\.jpg"):
        load_image(path)
    with pytest.raises(ImageDecodeError, match=r"fake\.jpg"):
        image_size(path)


def test_missing_file_is_not_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "gone.png")


def test_decode_error_pickles() -> None:
    err = ImageDecodeError(Path("a/b.png"), "bad\nthings")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) == f"{Path('a/b.png')}: bad things"
    assert clone.path == err.path


def test_loading_does_not_enable_truncated_images_globally(tmp_path: Path) -> None:
    from PIL import ImageFile

    path = tmp_path / "ok.png"
    path.write_bytes(_png_bytes(_rgb(2, 2)))
    load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_module_does_not_import_torch() -> None:
    code = "import sys, translate.imageio; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr or "translate.imageio imported torch"


# --------------------------------------------------------------------------- to_float / to_uint8


def test_float_round_trip_exact_for_all_values() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    floats = to_float(values)
    assert floats.dtype == np.float32 and floats.shape == (3, 16, 16)
    assert floats.min() == -1.0 and floats.max() == 1.0
    back = to_uint8(floats)
    assert back.dtype == np.uint8 and back.shape == (16, 16, 3)
    np.testing.assert_array_equal(back, values)


def test_float_conversions_4d_layout() -> None:
    batch = RNG.integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    floats = to_float(batch)
    assert floats.shape == (2, 3, 4, 5)
    # channel-first: floats[n, c, y, x] corresponds to batch[n, y, x, c]
    assert floats[1, 2, 3, 4] == pytest.approx(batch[1, 3, 4, 2] / 127.5 - 1)
    back = to_uint8(floats)
    assert back.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(back, batch)


def test_to_uint8_clips_and_handles_nan() -> None:
    x = np.array([[[-5.0, 5.0, np.nan, 0.0]]], dtype=np.float32)  # (C=1, H=1, W=4)
    out = to_uint8(x)
    assert out.shape == (1, 4, 1)
    assert out[0, :, 0].tolist() == [0, 255, 128, 128]
    with pytest.raises(TypeError):
        to_uint8(np.zeros((1, 2, 2), dtype=np.uint8))
    with pytest.raises(TypeError):
        to_float(np.zeros((2, 2, 1), dtype=np.float32))


# --------------------------------------------------------------------------- save_image


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".TIFF", ".webp"])
def test_save_lossless_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    pixels = _rgb(6, 5)
    path = tmp_path / "deep" / "nested" / f"out{suffix}"  # parents are created
    if suffix == ".webp":
        save_image(path, pixels, quality=100)
        assert load_image(path).shape == (6, 5, 3)
    else:
        save_image(path, pixels)
        np.testing.assert_array_equal(load_image(path), pixels)
    assert _leftovers(path.parent) == []


def test_save_jpeg_with_quality(tmp_path: Path) -> None:
    pixels = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    hi, lo = tmp_path / "hi.jpg", tmp_path / "lo.JPEG"
    save_image(hi, pixels, quality=95)
    save_image(lo, RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8), quality=5)
    assert Image.open(hi).format == "JPEG"
    assert np.abs(load_image(hi).astype(int) - pixels.astype(int)).max() <= 3
    assert Image.open(lo).format == "JPEG"
    assert _leftovers(tmp_path) == []


def test_save_single_channel_as_L(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, size=(3, 4, 1), dtype=np.uint8)
    path = tmp_path / "g.png"
    save_image(path, grey)
    assert Image.open(path).mode == "L"
    np.testing.assert_array_equal(load_image(path, channels=1), grey)


def test_save_overwrites_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "o.png"
    save_image(path, np.zeros((2, 2, 3), np.uint8))
    save_image(path, np.full((2, 2, 3), 9, np.uint8))
    assert load_image(path)[0, 0, 0] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_respects_umask_not_private_tempfile_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "perm.png"
        save_image(path, np.zeros((1, 1, 3), np.uint8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_no_temp_and_no_partial_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG partial garbage")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    fresh = tmp_path / "fresh.png"
    with pytest.raises(OSError, match="disk full"):
        save_image(fresh, np.zeros((2, 2, 3), np.uint8))
    assert not fresh.exists()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    # An existing target survives a failed overwrite untouched.
    existing = tmp_path / "keep.png"
    save_image(existing, np.full((2, 2, 3), 7, np.uint8))
    before = existing.read_bytes()
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(existing, np.zeros((2, 2, 3), np.uint8))
    assert existing.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_failed_rename_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "is_a_dir.png"
    target.mkdir()
    (target / "child").write_text("x")  # non-empty: os.replace cannot clobber it
    with pytest.raises(OSError):
        save_image(target, np.zeros((2, 2, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["is_a_dir.png"]


def test_save_rejects_bad_input_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extension"):
        save_image(tmp_path / "sub" / "x.gif", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        save_image(tmp_path / "sub" / "x.png", np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError):
        save_image(tmp_path / "sub" / "x.png", np.zeros((2, 2, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- make_grid


def test_make_grid_five_images_three_columns_two_rows() -> None:
    n, h, w = 5, 4, 6
    images = np.stack([np.full((h, w, 3), 10 * (i + 1), np.uint8) for i in range(n)])

    grid = make_grid(images, padding=2, pad_value=255)

    assert grid.shape == (2 * h + 3 * 2, 3 * w + 4 * 2, 3)
    for i in range(n):
        row, col = divmod(i, 3)
        top, left = 2 + row * (h + 2), 2 + col * (w + 2)
        assert (grid[top : top + h, left : left + w] == 10 * (i + 1)).all()
    # Borders, gutters and the empty sixth cell are all padding.
    mask = np.ones(grid.shape[:2], dtype=bool)
    for i in range(n):
        row, col = divmod(i, 3)
        top, left = 2 + row * (h + 2), 2 + col * (w + 2)
        mask[top : top + h, left : left + w] = False
    assert (grid[mask] == 255).all()


def test_make_grid_options() -> None:
    images = np.zeros((4, 2, 3, 1), np.uint8)
    grid = make_grid(images, ncols=4, padding=1, pad_value=7)
    assert grid.shape == (2 + 2, 4 * 3 + 5, 1)
    assert grid[0, 0, 0] == 7 and grid[1, 1, 0] == 0
    assert make_grid(images, padding=0).shape == (4, 6, 1)  # 2x2 default
    assert make_grid(images[:1], padding=0).shape == (2, 3, 1)
    assert make_grid(images, ncols=10, padding=0).shape == (2, 12, 1)  # capped at N


# --------------------------------------------------------------------------- resize


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(5, 3), (40, 30), (2, 2), (20, 10)])
def test_resize_shape_is_height_width(channels: int, size: tuple[int, int]) -> None:
    image = np.full((10, 20, channels), 123, np.uint8)
    out = resize(image, size)
    assert out.shape == (size[1], size[0], channels)
    assert out.dtype == np.uint8
    assert (out == 123).all()  # a flat image stays flat under bicubic and lanczos


def test_resize_same_size_is_a_copy() -> None:
    image = _rgb(3, 4)
    out = resize(image, (4, 3))
    np.testing.assert_array_equal(out, image)
    assert out is not image


# --------------------------------------------------------------------------- pad_to_multiple


def test_pad_to_multiple_reflects_bottom_right() -> None:
    x = RNG.standard_normal((2, 3, 250, 7)).astype(np.float32)

    padded, (h, w) = pad_to_multiple(x, 4)

    assert (h, w) == (250, 7)
    assert padded.shape == (2, 3, 252, 8)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded[..., :h, :w], x)
    # Reflection excludes the edge row: row 250 mirrors 248, row 251 mirrors 247.
    np.testing.assert_array_equal(padded[..., 250, :7], x[..., 248, :])
    np.testing.assert_array_equal(padded[..., 251, :7], x[..., 247, :])
    np.testing.assert_array_equal(padded[..., :250, 7], x[..., :, 5])


def test_pad_to_multiple_no_op_and_tiny_images() -> None:
    x = np.ones((1, 3, 8, 8), np.float32)
    same, size = pad_to_multiple(x, 4)
    assert size == (8, 8) and same.shape == x.shape

    one = np.full((1, 3, 1, 1), 0.25, np.float32)
    padded, size = pad_to_multiple(one, 4)
    assert size == (1, 1)
    assert padded.shape == (1, 3, 4, 4)
    assert (padded == 0.25).all()

    thin = np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1)  # pad 5 rows onto 3: reflect impossible
    padded, size = pad_to_multiple(thin, 8)
    assert padded.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(padded[0, 0, :3, 0], [0, 1, 2])
    assert set(np.unique(padded)) <= {0.0, 1.0, 2.0}


# --------------------------------------------------------------------------- pixel limit


def test_image_over_the_pixel_limit_is_refused_from_its_header_without_a_warning(tmp_path: Path) -> None:
    bomb = write_png_declaring(tmp_path / "bomb.png", 12000, 12000)  # 144 Mpx: past Pillow's own warning
    pillow_limit = Image.MAX_IMAGE_PIXELS

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for read in (load_image, image_size):
            with pytest.raises(ImageTooLargeError) as info:
                read(bomb)
            assert isinstance(info.value, ImageDecodeError)  # skipped wherever undecodable files are
            assert str(info.value) == f"{bomb}: 12000×12000 px is over the 64 Mpx limit"
        assert MAX_PIXELS == 64_000_000

    assert caught == []
    assert pillow_limit == Image.MAX_IMAGE_PIXELS  # restored


@pytest.mark.parametrize("suffix", [".png", ".tif"])  # TIFF checks Pillow's limit again while decoding
def test_max_pixels_replaces_pillows_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    pixels = _rgb(20, 20)
    Image.fromarray(pixels).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse 400 px

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.array_equal(load_image(path, max_pixels=None), pixels)
        assert np.array_equal(load_image(path, max_pixels=400), pixels)
        assert image_size(path, max_pixels=None) == (20, 20)
        with pytest.raises(ImageTooLargeError, match="20×20 px is over the 399 px limit"):
            load_image(path, max_pixels=399)

    assert caught == []
    assert Image.MAX_IMAGE_PIXELS == 100


# --------------------------------------------------------------------------- walk_images


def test_walk_reports_loops_and_other_files_and_keeps_hidden_ones_quiet(tmp_path: Path) -> None:
    for rel in ["a.png", "sub/b.png", "x.gif", "sub/y.GIF", "notes.txt", "README", ".hidden.txt", ".git/c.txt"]:
        _touch(tmp_path / rel)
    try:
        (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
        (tmp_path / "sub" / "self").symlink_to(tmp_path / "sub", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")

    walk = walk_images(tmp_path)

    def rel(paths: list[Path]) -> list[str]:
        return [p.relative_to(tmp_path).as_posix() for p in paths]

    assert rel(walk.images) == ["a.png", "sub/b.png"] and walk.images == find_images(tmp_path)
    assert rel(walk.other_files) == ["README", "notes.txt", "sub/y.GIF", "x.gif"]
    assert rel(walk.loops) == ["sub/loop", "sub/self"]
    assert walk.excluded == []


def test_walk_reports_a_loop_through_two_links(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "1.png")
    _touch(tmp_path / "b" / "2.png")
    try:
        (tmp_path / "a" / "to_b").symlink_to(tmp_path / "b", target_is_directory=True)
        (tmp_path / "b" / "to_a").symlink_to(tmp_path / "a", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")

    walk = walk_images(tmp_path)

    assert [p.relative_to(tmp_path).as_posix() for p in walk.images] == ["a/1.png", "a/to_b/2.png"]
    assert [p.relative_to(tmp_path).as_posix() for p in walk.loops] == ["a/to_b/to_a"]


def test_walk_never_enters_the_excluded_folder(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _touch(root / "a.png")
    _touch(out / "a.png")
    _touch(out / "deeper" / "b.png")
    try:
        (root / "link").symlink_to(out, target_is_directory=True)
        (root / "deep").symlink_to(out / "deeper", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")

    walk = walk_images(root, exclude=out)

    assert walk.images == [root / "a.png"]
    assert walk.excluded == [root / "deep", root / "link"]
    assert len(walk_images(root).images) == 3  # without exclude the links are followed
