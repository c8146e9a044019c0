"""Behavioural tests for `translate apply` and the inference library (CPU only, tiny untrained generator)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png_declaring
from PIL import Image
from typer.testing import CliRunner, Result

from translate.cli import app
from translate.config import apply_overrides, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy import inference
from translate.deploy.models import load_translator, resolve_checkpoint
from translate.imageio import load_image, to_float, to_uint8
from translate.recipes.cyclegan import CycleGAN, CycleGANConfig
from translate.recipes.restore import load_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
OLD_NS = 1_000_000_000 * 10**9  # an mtime (2001) that no fresh write can have


# --------------------------------------------------------------------------------------------- helpers


def _save_checkpoint(run_dir: Path, step: int, seed: int = 0) -> Path:
    """A tiny, untrained CycleGAN checkpoint; `seed` picks the initial weights."""
    config = apply_overrides(
        CycleGANConfig(),
        {
            "data.image_size": 32,
            "data.channels": 3,
            "generator_channels": 8,
            "discriminator_channels": 8,
            "num_blocks": 1,
            "train.steps": 1,
            "train.seed": seed,
        },
    )
    recipe = CycleGAN(config, Engine("cpu"))
    path = checkpoint.checkpoint_path(run_dir, step)
    checkpoint.save(path, recipe="cyclegan", config=to_dict(config), step=step, modules=recipe.modules())
    return path


def _rgb(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth-ish colour image (random noise plus gradients), (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / max(1, width - 1), ys * 255 / max(1, height - 1), (xs + ys) % 256], axis=2)
    noise = rng.integers(-40, 41, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _write(path: Path, width: int, height: int, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = _rgb(width, height, seed)
    if mode == "RGB":
        image = Image.fromarray(rgb)
    elif mode == "L":
        image = Image.fromarray(rgb[:, :, 0])
    elif mode == "RGBA":
        alpha = np.full((height, width, 1), 255, np.uint8)
        alpha[: height // 2] = 0  # half transparent, flattened on white by load_image
        image = Image.fromarray(np.concatenate([rgb, alpha], axis=2))
    elif mode == "I;16":
        image = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    else:
        raise ValueError(mode)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, format="JPEG", quality=95)
    else:
        image.save(path, format="PNG")
    return path


def _apply(*args: str | Path) -> Result:
    return RUNNER.invoke(app, ["apply", *(str(a) for a in args), "--device", "cpu"])


def _flat(text: str) -> str:
    """Output with all whitespace runs collapsed, so terminal-width wrapping cannot break assertions."""
    return " ".join(text.split())


def _files(root: Path) -> set[str]:
    """Every file under root (hidden ones included), as relative POSIX paths."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def _assert_clean_failure(result: Result, code: int = 2) -> str:
    """Exit code `code` (2: a usage error, 1: a failed run) with exactly one one-line `error:` message and no
    traceback; returns that line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = _error_lines(result)
    assert len(lines) == 1, result.output
    return lines[0]


def _direct(model_file: Path, image_file: Path, direction: str) -> np.ndarray:
    """What apply should write, by hand: load, normalise, reflect-pad to 4, run the generator, crop, uint8."""
    image = load_image(image_file)
    x = to_float(image[None])
    h, w = x.shape[-2:]
    padded = np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="reflect")
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0
    module, _ = load_generator(model_file, direction)
    with torch.no_grad():
        y = module(torch.from_numpy(padded)).numpy()
    return to_uint8(y[..., :h, :w])[0]


def _pixels(path: Path) -> np.ndarray:
    return load_image(path).astype(np.int16)


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    _save_checkpoint(run, 1)
    return run


@pytest.fixture(scope="module")
def model_file(run_dir: Path) -> Path:
    return checkpoint.checkpoint_path(run_dir, 1)


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with checkpoints at steps 1 and 3 holding different weights."""
    run = tmp_path_factory.mktemp("two_step_run")
    _save_checkpoint(run, 1, seed=0)
    _save_checkpoint(run, 3, seed=1)
    return run


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """A nested folder of assorted images, one corrupt PNG and a text file."""
    root = tmp_path / "photos"
    _write(root / "square.png", 32, 32, seed=1)
    _write(root / "sub" / "odd.png", 50, 70, seed=2)
    _write(root / "sub" / "deep" / "flat.png", 33, 17, seed=3)
    _write(root / "gray.png", 24, 20, seed=4, mode="L")
    _write(root / "sub" / "alpha.png", 21, 27, seed=5, mode="RGBA")
    _write(root / "sub" / "photo.JPG", 40, 26, seed=6)
    _write(root / "deep16.png", 19, 13, seed=7, mode="I;16")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not image data" * 4)
    (root / "notes.txt").write_text("not an image\n")
    return root


# ------------------------------------------------------------------------------------------------ tests


def test_folder_tree_keeps_paths_names_and_sizes_and_reports_corrupt_file(
    mixed_tree: Path, model_file: Path, tmp_path: Path
) -> None:
    assert Image.open(mixed_tree / "deep16.png").mode.startswith("I")  # really a 16-bit file
    before = _files(mixed_tree)
    out = tmp_path / "out"

    result = _apply(mixed_tree, "--model", model_file, "--out", out)

    assert result.exit_code == 1, result.output  # one file failed
    assert "Traceback" not in result.output
    assert "broken.png" in result.output
    assert "notes.txt" not in result.output
    assert "done 7" in _flat(result.output) and "failed 1" in _flat(result.output)
    images = before - {"broken.png", "notes.txt"}
    # Same relative paths and names (extension case included); nothing else, so no temp files either.
    assert _files(out) == images
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    for relative in images:
        with Image.open(mixed_tree / relative) as source, Image.open(out / relative) as translated:
            assert translated.size == source.size, relative
            translated.load()  # a complete, decodable file
    with Image.open(out / "sub" / "photo.JPG") as translated:
        assert translated.format == "JPEG"
    assert _files(mixed_tree) == before  # nothing new inside INPUT


def test_default_out_is_a_sibling_named_after_the_direction(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "photos"
    _write(source / "a.png", 20, 12)
    before = _files(tmp_path)

    result = _apply(source, "--model", model_file)
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "photos_a2b") == {"a.png"}

    result = _apply(source, "--model", model_file, "--direction", "b2a")
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "photos_b2a") == {"a.png"}
    assert _files(tmp_path) == before | {"photos_a2b/a.png", "photos_b2a/a.png"}


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_values_match_a_direct_generator_computation(tmp_path: Path, model_file: Path, direction: str) -> None:
    source = _write(tmp_path / "in" / "odd.png", 50, 70, seed=11)  # 50 x 70: both axes need padding
    out = tmp_path / "out"

    result = _apply(source, "--model", model_file, "--out", out, "--direction", direction)
    assert result.exit_code == 0, result.output

    expected = _direct(model_file, source, direction).astype(np.int16)
    written = _pixels(out / "odd.png")
    assert written.shape == expected.shape == (70, 50, 3)
    assert expected.std() > 1  # the untrained generator still produces a non-constant image
    assert np.abs(written - expected).max() <= 1


def test_directions_use_different_generators(tmp_path: Path, model_file: Path) -> None:
    source = _write(tmp_path / "in" / "x.png", 24, 16, seed=12)
    assert _apply(source, "--model", model_file, "--out", tmp_path / "ab").exit_code == 0
    b2a = _apply(source, "--model", model_file, "--out", tmp_path / "ba", "--direction", "b2a")
    assert b2a.exit_code == 0, b2a.output
    assert np.abs(_pixels(tmp_path / "ab" / "x.png") - _pixels(tmp_path / "ba" / "x.png")).max() > 1


def test_batch_size_does_not_change_results(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "same"
    names = [f"img{i}.png" for i in range(7)]
    for i, name in enumerate(names):
        _write(source / name, 22, 30, seed=100 + i)  # 22 x 30: padded to 24 x 32

    one = _apply(source, "--model", model_file, "--out", tmp_path / "b1", "--batch-size", "1")
    eight = _apply(source, "--model", model_file, "--out", tmp_path / "b8", "--batch-size", "8")
    assert one.exit_code == 0 and eight.exit_code == 0, one.output + eight.output
    assert _files(tmp_path / "b1") == _files(tmp_path / "b8") == set(names)
    differing = total = 0
    for name in names:
        a, b = _pixels(tmp_path / "b1" / name), _pixels(tmp_path / "b8" / name)
        # A batched convolution may sum in another order (~1e-6 in float), which can flip a value that lies
        # exactly on a rounding boundary by one step; anything more means images leak into each other.
        assert np.abs(a - b).max() <= 1, name
        differing += int((a != b).sum())
        total += a.size
    assert differing <= total // 1000


def test_second_run_skips_existing_outputs_and_overwrite_redoes_them(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    for i, name in enumerate(["a.png", "sub/b.png", "c.jpg"]):
        _write(source / name, 16 + 4 * i, 12, seed=i)
    out = tmp_path / "out"
    args = (source, "--model", model_file, "--out", out)

    first = _apply(*args)
    assert first.exit_code == 0, first.output
    assert "done 3, skipped 0" in _flat(first.output)
    outputs = [out / name for name in ("a.png", "sub/b.png", "c.jpg")]
    for path in outputs:
        os.utime(path, ns=(OLD_NS, OLD_NS))

    second = _apply(*args)
    assert second.exit_code == 0, second.output
    assert "done 0, skipped 3" in _flat(second.output)
    assert [p.stat().st_mtime_ns for p in outputs] == [OLD_NS] * 3

    outputs[1].unlink()  # only the missing one is redone
    third = _apply(*args)
    assert third.exit_code == 0, third.output
    assert "done 1, skipped 2" in _flat(third.output)
    assert outputs[1].exists() and outputs[0].stat().st_mtime_ns == OLD_NS

    fourth = _apply(*args, "--overwrite")
    assert fourth.exit_code == 0, fourth.output
    assert "done 3, skipped 0" in _flat(fourth.output)
    assert all(p.stat().st_mtime_ns != OLD_NS for p in outputs)
    assert _files(out) == {"a.png", "sub/b.png", "c.jpg"}


@pytest.mark.parametrize("where", ["sub/translated", "."])
def test_out_inside_input_is_refused(tmp_path: Path, model_file: Path, where: str) -> None:
    source = tmp_path / "in"
    _write(source / "sub" / "a.png", 16, 16)
    before = _files(tmp_path)
    out = source / where

    line = _assert_clean_failure(_apply(source, "--model", model_file, "--out", out))

    assert str(out.resolve()) in line
    assert _files(tmp_path) == before
    assert not (source / "sub" / "translated").exists()


def test_size_scales_the_shorter_side_keeping_aspect(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    _write(source / "tall.png", 32, 64)
    _write(source / "wide.png", 48, 24)
    _write(source / "odd.png", 50, 70)
    out = tmp_path / "out"

    result = _apply(source, "--model", model_file, "--out", out, "--size", "16")

    assert result.exit_code == 0, result.output
    sizes = {name: Image.open(out / name).size for name in ("tall.png", "wide.png", "odd.png")}
    assert sizes == {"tall.png": (16, 32), "wide.png": (32, 16), "odd.png": (16, 22)}


def test_ext_changes_the_output_format(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    _write(source / "photo.jpg", 20, 16)
    out = tmp_path / "out"

    result = _apply(source, "--model", model_file, "--out", out, "--ext", "png")

    assert result.exit_code == 0, result.output
    assert _files(out) == {"photo.png"}
    with Image.open(out / "photo.png") as written:
        assert written.format == "PNG" and written.size == (20, 16)


def test_single_file_input_goes_to_a_sibling_file_or_the_named_file(tmp_path: Path, model_file: Path) -> None:
    source = _write(tmp_path / "cat.jpg", 20, 28)

    result = _apply(source, "--model", model_file)

    assert result.exit_code == 0, result.output
    assert _files(tmp_path) == {"cat.jpg", "cat_a2b.jpg"}
    with Image.open(tmp_path / "cat_a2b.jpg") as written:
        assert written.format == "JPEG" and written.size == (20, 28)

    named = tmp_path / "elsewhere" / "zebra.png"
    result = _apply(source, "--model", model_file, "--out", named)
    assert result.exit_code == 0, result.output
    with Image.open(named) as written:
        assert written.format == "PNG" and written.size == (20, 28)


def test_tiny_and_thin_images_are_translated(tmp_path: Path, model_file: Path) -> None:
    photos = tmp_path / "tiny"
    sizes = {"dot.png": (1, 1), "three.png": (3, 3), "strip.png": (1, 50), "bar.png": (50, 2)}
    for name, (w, h) in sizes.items():
        _write(photos / name, w, h)

    result = _apply(photos, "--model", model_file)

    assert result.exit_code == 0, result.output
    for name, size in sizes.items():
        with Image.open(tmp_path / "tiny_a2b" / name) as written:
            assert written.size == size


def test_input_that_is_not_an_image_is_a_clean_error(tmp_path: Path, model_file: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")

    line = _assert_clean_failure(_apply(notes, "--model", model_file))

    assert "notes.txt" in line
    assert _files(tmp_path) == {"notes.txt"}


def test_missing_input_is_a_clean_error(tmp_path: Path, model_file: Path) -> None:
    line = _assert_clean_failure(_apply(tmp_path / "nowhere", "--model", model_file))
    assert "nowhere" in line
    assert _files(tmp_path) == set()


@pytest.mark.parametrize("kind", ["empty folder", "missing", "not safetensors", "corrupt safetensors"])
def test_unusable_model_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "in"
    _write(source / "a.png", 16, 16)
    if kind == "empty folder":
        model = tmp_path / "empty_run"
        model.mkdir()
    elif kind == "missing":
        model = tmp_path / "no_such_run"
    elif kind == "not safetensors":
        model = tmp_path / "weights.pt"
        model.write_bytes(b"\0" * 64)
    else:
        model = tmp_path / "broken.safetensors"
        model.write_bytes(b"\xff" * 64)
    before = _files(tmp_path)

    # Naming no model is a usage error; a model file that cannot be read fails the run.
    line = _assert_clean_failure(_apply(source, "--model", model), 1 if kind == "corrupt safetensors" else 2)

    assert model.name in line
    assert _files(tmp_path) == before
    assert not (tmp_path / "in_a2b").exists()


def test_unknown_direction_is_a_clear_error(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    _write(source / "a.png", 16, 16)

    result = _apply(source, "--model", model_file, "--direction", "sideways")

    assert result.exit_code == 2 and "Traceback" not in result.output  # the command line's own usage error
    assert "'sideways' is not one of 'a2b', 'b2a'" in result.output
    assert _files(tmp_path) == {"in/a.png"}


def test_run_folder_resolves_to_its_newest_checkpoint(tmp_path: Path, two_step_run: Path) -> None:
    step1, step3 = checkpoint.checkpoint_path(two_step_run, 1), checkpoint.checkpoint_path(two_step_run, 3)
    assert resolve_checkpoint(str(two_step_run)) == step3
    assert "step 3" in load_translator(str(two_step_run), "a2b", "cpu").description

    source = _write(tmp_path / "in" / "a.png", 24, 20, seed=21)
    results = {
        name: _apply(source, "--model", model, "--out", tmp_path / name)
        for name, model in (("run", two_step_run), ("step1", step1), ("step3", step3))
    }
    assert all(r.exit_code == 0 for r in results.values()), [r.output for r in results.values()]
    assert "step 3" in _flat(results["run"].output)
    via_run, via_1, via_3 = (_pixels(tmp_path / name / "a.png") for name in ("run", "step1", "step3"))
    assert np.array_equal(via_run, via_3)
    assert np.abs(via_run - via_1).max() > 1  # the two checkpoints really differ


def test_library_path_does_not_import_torch() -> None:
    code = "import sys; import translate.deploy.inference, translate.imageio; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_ext_collision_is_refused(run_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(photos / "a.jpg")
    Image.new("RGB", (16, 16), (10, 20, 30)).save(photos / "a.png")
    result = CliRunner().invoke(app, ["apply", str(photos), "--model", str(run_dir), "--ext", "png"])
    assert result.exit_code == 2
    assert "would both be written" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "photos_a2b").exists()


def test_image_over_the_pixel_limit_is_skipped_and_counted_without_a_warning(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    _write(source / "ok.png", 20, 16)
    write_png_declaring(source / "bomb.png", 12000, 12000)  # 144 Mpx in a few hundred bytes
    out = tmp_path / "out"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _apply(source, "--model", model_file, "--out", out)

    assert caught == []
    assert result.exit_code == 1, result.output
    text = _flat(result.output)
    assert f"failed: {source / 'bomb.png'}: 12000×12000 px is over the 64 Mpx limit (--max-pixels)" in text
    assert "done 1, skipped 0" in text and "failed 1" in text
    assert "Warning" not in text and "decompression bomb" not in text and "Traceback" not in text
    assert _files(out) == {"ok.png"}


def test_max_pixels_and_size_skip_per_image_what_would_exceed_the_limit(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    _write(source / "small.png", 16, 16)
    _write(source / "big.png", 40, 40)
    _write(source / "thin.png", 16, 64)
    out = tmp_path / "out"

    plain = _apply(source, "--model", model_file, "--out", out / "plain", "--max-pixels", "1100")
    assert plain.exit_code == 1, plain.output
    assert "big.png: 40×40 px is over the 1100 px limit (--max-pixels)" in _flat(plain.output)
    assert _files(out / "plain") == {"small.png", "thin.png"}

    # At --size 30 the thin image becomes 30×120 px: over the limit although its file is within it.
    sized = _apply(source, "--model", model_file, "--out", out / "sized", "--max-pixels", "1100", "--size", "30")
    assert sized.exit_code == 1, sized.output
    assert "thin.png: at --size 30, 30×120 px is over the 1100 px limit (--max-pixels)" in _flat(sized.output)
    assert "done 1, skipped 0 (already there; --overwrite to redo), failed 2" in _flat(sized.output)
    assert _files(out / "sized") == {"small.png"}

    lifted = _apply(source, "--model", model_file, "--out", out / "lifted", "--max-pixels", "0")
    assert lifted.exit_code == 0, lifted.output
    assert _files(out / "lifted") == {"small.png", "big.png", "thin.png"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--size", "30000"], "--size"),  # the option's own bound
        (["--size", "9000"], "--size 9000 makes every image at least 9000×9000 px, more than --max-pixels 64000000"),
        (["--size", "40", "--max-pixels", "1100"], "more than --max-pixels 1100"),
    ],
)
def test_size_that_cannot_fit_the_pixel_limit_is_a_usage_error(
    tmp_path: Path, model_file: Path, options: list[str], message: str
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.png").write_bytes(b"not a png")  # refused before any image is read (and cheaply if it were not)

    result = _apply(source, "--model", model_file, "--out", tmp_path / "out", *options)

    assert result.exit_code == 2, result.output
    assert message in _flat(result.output) and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_link_to_the_output_folder_inside_the_input_is_not_walked(tmp_path: Path, model_file: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _write(source / "a.png", 20, 16)
    out.mkdir()
    try:
        (source / "link").symlink_to(out, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")

    for _ in range(2):  # the second run finds out/a.png through the link
        result = _apply(source, "--model", model_file, "--out", out)
        assert result.exit_code == 0, result.output
        assert "skipped 1 link into the output folder: link" in _flat(result.output)

    assert _files(out) == {"a.png"}


def test_symlink_loops_and_non_image_files_are_counted_in_the_summary(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "in"
    _write(source / "a.png", 20, 16)
    _write(source / "sub" / "b.png", 16, 20)
    for name in ("x.gif", "sub/y.gif", "notes.txt", ".hidden.txt", ".cache/z.gif"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"GIF89a")
    try:
        (source / "sub" / "loop").symlink_to(source, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")

    result = _apply(source, "--model", model_file, "--out", tmp_path / "out")

    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert "skipped 3 non-image files (.gif ×2, .txt)" in text
    assert "skipped 1 symlink loop: sub/loop" in text
    assert "done 2, skipped 0" in text and "failed 0" in text
    assert _files(tmp_path / "out") == {"a.png", "sub/b.png"}


def test_an_image_this_machine_cannot_hold_is_named_and_the_run_goes_on(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in"
    _write(source / "a.png", 20, 16)
    _write(source / "huge.png", 24, 16)

    def load(path: Path, channels: int = 3, *, max_pixels: int | None = None) -> np.ndarray:
        if path.name == "huge.png":
            raise MemoryError
        return load_image(path, channels, max_pixels=max_pixels)

    monkeypatch.setattr(inference, "load_image", load)

    result = _apply(source, "--model", model_file, "--out", tmp_path / "out")

    assert result.exit_code == 1, result.output
    assert f"failed: {source / 'huge.png'}: not enough memory to decode it" in _flat(result.output)
    assert "done 1, skipped 0" in _flat(result.output)
    assert _files(tmp_path / "out") == {"a.png"}
