"""Tiled translation (translate.backends.tiles): the grid and blend geometry, both backends' statistics and fixed-
statistics runs, agreement with whole-image translation, and `apply --tile` (CPU only, tiny untrained networks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from translate.backends import tiles
from translate.cli import app
from translate.config import apply_overrides, to_dict
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.deploy import inference
from translate.deploy.inference import MIN_SIDE, run_model, translate_files
from translate.deploy.models import load_translator
from translate.imageio import to_float
from translate.recipes import RECIPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
# Instance norm (ResNet), batch norm (U-Net), and the ResNet with anti-aliased resampling (cut's default).
RECIPES_TILED = ["cyclegan", "pix2pix", "cut"]
MARGINS = {"cyclegan": 20, "pix2pix": 93, "cut": 29}  # tiny presets: ResNet-1 at 8 channels, 5-level U-Net
# Tiled against whole-image translation, both with the whole image's statistics, in uint8 levels: the same
# arithmetic on the same pixels, except that convolution kernels may sum in another order for another input size.
MAX_LEVELS = 1
MAX_DIFFERING = 1e-3  # fraction of output values that may differ by that one level


def _cli(*args: str | Path) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args])


def _tiny_checkpoint(folder: Path, recipe: str) -> Path:
    """An untrained RGB checkpoint of `recipe` at its tiny preset, in a run folder named after it."""
    spec = RECIPES[recipe]
    overrides = {**spec.presets["tiny"], "data.channels": 3, "train.seed": 0, "train.steps": 1}
    config = apply_overrides(spec.config_class(), overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        modules = spec.build(config, Engine("cpu")).modules()
    path = checkpoint.checkpoint_path(folder / recipe, 1)
    checkpoint.save(path, recipe=recipe, config=to_dict(config), step=1, modules=modules)
    return path


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colour image with gradients, a bright square and noise, (H, W, 3) uint8: statistics vary over it."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / width, ys * 255 / height, (xs + ys) % 256], axis=2)
    base[height // 4 : height // 2, width // 3 : width // 2] = 250
    return np.clip(base + rng.integers(-40, 41, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _levels_apart(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Largest difference in uint8 levels and the fraction of values that differ at all."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(diff.max()), float((diff > 0).mean())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """recipe → checkpoint and recipe.onnx → its export, through the CLI."""
    root = tmp_path_factory.mktemp("tiles")
    found: dict[str, Path] = {}
    for recipe in RECIPES_TILED:
        found[recipe] = _tiny_checkpoint(root, recipe)
        found[f"{recipe}.onnx"] = root / f"{recipe}.onnx"
        result = _cli("export", found[recipe], "--out", found[f"{recipe}.onnx"])
        assert result.exit_code == 0, result.output
    return found


def _load(path: Path) -> inference.Translator:
    """The translator for a checkpoint, or an export on ONNX Runtime (test_openvino.py tiles on OpenVINO)."""
    return load_translator(str(path), device="cpu", backend="onnxruntime" if path.suffix == ".onnx" else "auto")


def _whole_statistics(translator: inference.Translator, image: np.ndarray) -> tiles.Stats:
    """The statistics whole-image translation normalises with: those of the image padded as run_model pads it."""
    batch = tiles.statistics_input(image, translator.stride, max(MIN_SIDE, translator.stride), None)
    return translator.tiling().statistics(batch)


def _tiled(translator: inference.Translator, image: np.ndarray, tile: int, stats: tiles.Stats | None) -> np.ndarray:
    minimum = max(MIN_SIDE, translator.stride)
    backend = translator.tiling()
    return tiles.translate_tiled(backend, image, stride=translator.stride, tile=tile, minimum=minimum, stats=stats)


# --------------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("stride", [1, 4, 32, 64])
@pytest.mark.parametrize("margin", [0, 20, 93])
def test_grid_covers_the_axis_exactly_with_the_overlap(stride: int, margin: int) -> None:
    least = tiles.overlap(margin)
    for requested in (1, 100, 300, 777):
        tile = tiles.tile_side(requested, margin, stride)
        assert tile % stride == 0 and tile >= max(requested // stride * stride, 2 * least)
        for length in range(stride, 6 * tile, max(stride, 7)):
            length -= length % stride
            size = min(tile, length)
            starts = tiles.tile_starts(length, size, least, stride)
            assert starts[0] == 0 and starts[-1] + size == length
            assert all(start % stride == 0 for start in starts)
            steps = np.diff(starts)
            assert (steps > 0).all() and (size - steps >= least).all()
            assert len(steps) == 0 or steps.max() - steps.min() <= stride


@pytest.mark.parametrize("stride", [1, 4, 64])
@pytest.mark.parametrize("margin", [0, 20, 189])
def test_blend_weights_sum_to_one_and_ignore_the_margins(stride: int, margin: int) -> None:
    tile = tiles.tile_side(0, margin, stride)  # the smallest: overlaps are then the largest share
    for length in range(tile + stride, 5 * tile, 3 * stride + 1):
        length -= length % stride
        starts = tiles.tile_starts(length, tile, tiles.overlap(margin), stride)
        weights = tiles.tile_weights(starts, tile)
        total = np.zeros(length)
        for k, (start, weight) in enumerate(zip(starts, weights, strict=True)):
            total[start : start + tile] += weight
            assert ((weight >= 0) & (weight <= 1)).all()
            # A shared edge's margin is ignored (the tile's own padding reached it); image borders are kept.
            assert (weight[:margin] == 0).all() if k > 0 else weight[0] == 1
            assert (weight[tile - margin :] == 0).all() if k + 1 < len(starts) else weight[-1] == 1
            assert np.abs(np.diff(weight)).max() <= np.pi / (2 * tiles.BLEND)  # a smooth ramp, not a step
        np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_two_dimensional_weights_sum_to_one() -> None:
    grid = tiles.tile_grid(700, 1000, 200, 20, 4)
    total = np.zeros((700, 1000))
    for top, row in zip(grid.tops, grid.row_weights, strict=True):
        for left, col in zip(grid.lefts, grid.col_weights, strict=True):
            total[top : top + grid.height, left : left + grid.width] += np.outer(row, col)
    assert len(grid.tops) > 2 and len(grid.lefts) > 2
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_when_images_are_tiled() -> None:
    side = int(tiles.AUTO_PIXELS**0.5)
    assert not tiles.wants_tiles(side, side, None) and tiles.wants_tiles(side + 1, side + 1, None)
    assert not tiles.wants_tiles(10_000, 10_000, 0)
    assert tiles.wants_tiles(100, 301, 300) and not tiles.wants_tiles(300, 300, 300)


def test_receptive_margin_of_known_layers() -> None:
    conv3 = [tiles.SpatialLayer("pad", pad=1), tiles.SpatialLayer("conv", kernel=3)]
    assert tiles.receptive_margin(conv3) == 1
    down = tiles.SpatialLayer("conv", kernel=4, stride=2, pad=1)
    up = tiles.SpatialLayer("transposed", kernel=4, stride=2, pad=1)
    assert tiles.receptive_margin([down, down, up, up]) == 3 * (2**2 - 1)  # a 2-level U-Net: 3 · (2^depth - 1)


# --------------------------------------------------------------------------------------------- backends


@pytest.mark.parametrize("recipe", RECIPES_TILED)
def test_both_backends_read_the_same_margin_and_statistics(recipe: str, models: dict[str, Path]) -> None:
    torch_backend = _load(models[recipe])
    onnx_backend = _load(models[f"{recipe}.onnx"])
    assert torch_backend.tiling().margin == onnx_backend.tiling().margin == MARGINS[recipe]
    image = _image(96, 128)
    ours, theirs = _whole_statistics(torch_backend, image), _whole_statistics(onnx_backend, image)
    assert len(ours) == len(theirs) == (0 if recipe == "pix2pix" else 7)  # pix2pix: batch norm only
    for (mean_a, var_a), (mean_b, var_b) in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mean_a, mean_b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var_a, var_b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["", ".onnx"])
def test_fixed_statistics_of_the_image_itself_reproduce_the_network(models: dict[str, Path], kind: str) -> None:
    translator = _load(models[f"cyclegan{kind}"])
    batch = to_float(_image(64, 96)[None])
    stats = translator.tiling().statistics(batch)
    np.testing.assert_allclose(translator.tiling()(batch, stats), translator(batch), atol=2e-5)
    other = translator.tiling().statistics(to_float(_image(64, 96, seed=1)[None]))
    assert np.abs(translator.tiling()(batch, other) - translator(batch)).max() > 1e-3  # the statistics are used


@pytest.mark.parametrize("recipe", ["cyclegan", "cut"])  # strided and transposed convolutions; blur filters
def test_margin_bounds_what_a_pixel_changes(recipe: str, models: dict[str, Path]) -> None:
    """With fixed statistics the network is local: one changed input pixel changes outputs within the margin."""
    translator = _load(models[recipe])
    backend = translator.tiling()
    batch = to_float(_image(128, 128)[None])
    stats = backend.statistics(batch)
    changed = batch.copy()
    changed[:, :, 64, 64] = -changed[:, :, 64, 64]
    moved = np.abs(backend(changed, stats) - backend(batch, stats)).max(axis=(0, 1)) > 0
    ys, xs = np.nonzero(moved)
    assert len(ys) and max(np.abs(ys - 64).max(), np.abs(xs - 64).max()) <= backend.margin


# --------------------------------------------------------------------------------------------- tiled = whole


@pytest.mark.parametrize("kind", ["", ".onnx"])
@pytest.mark.parametrize("recipe", RECIPES_TILED)
def test_tiled_with_whole_image_statistics_equals_whole_image(recipe: str, kind: str, models: dict[str, Path]) -> None:
    translator = _load(models[f"{recipe}{kind}"])
    image = _image(470, 650)  # not multiples of the stride: tiles past the edge are padded as the image is
    whole = run_model(translator, image[None])[0]
    tiled = _tiled(translator, image, 100, _whole_statistics(translator, image))  # raised to the margin's minimum
    stride = translator.stride
    padded = [n + (-n % stride) for n in image.shape[:2]]
    grid = tiles.tile_grid(*padded, 100, translator.tiling().margin, stride)
    assert len(grid.tops) >= 2 and len(grid.lefts) >= 2
    levels, differing = _levels_apart(tiled, whole)
    assert levels <= MAX_LEVELS and differing <= MAX_DIFFERING, (levels, differing)


def test_without_the_margin_tiles_disagree(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The agreement above rests on the margin, not on the ramp: with a short ramp, tiles still agree when their
    margins are left out and show seams when outputs their own padding reached are blended in."""
    monkeypatch.setattr(tiles, "BLEND", 4)  # the 32 px ramp would give this tiny network's edges almost no weight
    translator = _load(models["cyclegan"])
    image = _image(300, 400, seed=7)
    whole, stats = run_model(translator, image[None])[0], _whole_statistics(translator, image)
    assert _levels_apart(_tiled(translator, image, 150, stats), whole)[0] <= MAX_LEVELS
    monkeypatch.setattr(translator.tiling(), "margin", 0)
    assert _levels_apart(_tiled(translator, image, 150, stats), whole)[0] > 10 * MAX_LEVELS


@pytest.mark.parametrize("recipe", RECIPES_TILED)
def test_onnx_tiles_match_pytorch_tiles(recipe: str, models: dict[str, Path]) -> None:
    image = _image(470, 650, seed=2)
    outputs = [_tiled(_load(models[name]), image, 100, None) for name in (recipe, f"{recipe}.onnx")]
    levels, differing = _levels_apart(*outputs)
    assert levels <= MAX_LEVELS and differing <= MAX_DIFFERING, (levels, differing)


def test_downscaled_statistics_are_shared_so_tile_size_does_not_matter(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics from a downscaled copy differ from the whole image's, but every tile uses the same ones: any
    tiling (and batching of tiles) gives the same picture, so there are no seams."""
    monkeypatch.setattr(tiles, "STATS_PIXELS", 64 * 64)  # the 300×400 image is then downscaled for them
    translator = _load(models["cyclegan"])
    image = _image(300, 400, seed=3)
    small = _tiled(translator, image, 150, None)
    monkeypatch.setattr(tiles, "TILE_BATCH_PIXELS", 1)  # one tile per forward pass
    large = _tiled(translator, image, 250, None)
    levels, differing = _levels_apart(small, large)
    assert levels <= MAX_LEVELS and differing <= MAX_DIFFERING, (levels, differing)
    assert _levels_apart(small, run_model(translator, image[None])[0])[0] > MAX_LEVELS  # they are not the image's


def test_large_images_are_tiled_without_being_asked(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiles, "AUTO_PIXELS", 200 * 200)
    monkeypatch.setattr(tiles, "DEFAULT_TILE", 150)
    calls = []
    original = tiles.translate_tiled
    monkeypatch.setattr(tiles, "translate_tiled", lambda *a, **k: calls.append(k["tile"]) or original(*a, **k))
    translator = _load(models["cyclegan"])
    image = _image(210, 260, seed=4)
    Image.fromarray(image).save(tmp_path / "big.png")
    Image.fromarray(image[:100, :100]).save(tmp_path / "small.png")
    jobs = [inference.Job(tmp_path / f"{name}.png", tmp_path / "out" / f"{name}.png") for name in ("big", "small")]
    summary = translate_files(jobs, translator, progress=False)
    assert summary.done == 2 and calls == [150]  # only the big one
    # The image is below STATS_PIXELS: its own statistics, so the tiles give the whole-image result.
    levels, differing = _levels_apart(np.asarray(Image.open(jobs[0].target)), run_model(translator, image[None])[0])
    assert levels <= MAX_LEVELS and differing <= MAX_DIFFERING, (levels, differing)


# --------------------------------------------------------------------------------------------- command line


@pytest.mark.parametrize("recipe", RECIPES_TILED)
def test_apply_tile_through_the_cli_for_checkpoints_and_onnx(
    recipe: str, models: dict[str, Path], tmp_path: Path
) -> None:
    image = _image(330, 510, seed=5)
    Image.fromarray(image).save(tmp_path / "photo.png")
    outputs = {}
    for kind, tile in (("", "0"), ("", "120"), (".onnx", "120")):
        out = tmp_path / f"out{kind}_{tile}.png"
        backend = ["--backend", "onnxruntime"] if kind else []
        result = _cli(
            "apply", tmp_path / "photo.png", "-m", models[f"{recipe}{kind}"], "--tile", tile, "--out", out, *backend
        )
        assert result.exit_code == 0, result.output
        outputs[kind, tile] = np.asarray(Image.open(out))
        assert outputs[kind, tile].shape == image.shape
    # The image is below STATS_PIXELS, so the tiles normalise with its own statistics: as untiled, within a level.
    for key in (("", "120"), (".onnx", "120")):
        levels, differing = _levels_apart(outputs[key], outputs["", "0"])
        assert levels <= MAX_LEVELS and differing <= MAX_DIFFERING, (key, levels, differing)


def test_tiled_onnx_apply_runs_without_torch(models: dict[str, Path], tmp_path: Path) -> None:
    Image.fromarray(_image(200, 300, seed=6)).save(tmp_path / "photo.png")
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from translate.cli import app\n"
        f"app(['apply', {str(tmp_path / 'photo.png')!r}, '-m', {str(models['cyclegan.onnx'])!r}, '--tile', '150',"
        f" '--out', {str(tmp_path / 'out.png')!r}, '--backend', 'onnxruntime'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (200, 300, 3)


class _Identity:
    """A numpy backend (no statistics, a 4 px margin): what tiling itself allocates, without a network's memory."""

    margin = 4

    def statistics(self, image: np.ndarray) -> tiles.Stats:
        return []

    def __call__(self, batch: np.ndarray, stats: tiles.Stats) -> np.ndarray:
        return batch


def _peak_beyond_output(side: int) -> int:
    """Bytes tiled translation of a side × side RGB image holds at its peak, beyond the uint8 output itself."""
    import tracemalloc

    image = _image(side, side)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = tiles.translate_tiled(_Identity(), image, stride=4, tile=128, minimum=16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(out, image)  # the identity, tiled, is the identity: tiles cover the image exactly once
    return peak - out.nbytes


def test_tiled_memory_beyond_the_output_does_not_grow_with_the_area() -> None:
    small, large = _peak_beyond_output(1024), _peak_beyond_output(2048)  # 4× the pixels
    # What remains is one tile batch, the statistics copy (bounded by STATS_PIXELS) and a band one tile row high,
    # which grows with the width alone: at most 2× here, against 4× for anything proportional to the area.
    assert large < 2 * small, (small, large)
    # Whole-image translation holds float32 copies of input and output (and the network's maps): tiles, less than one.
    assert large < 2048 * 2048 * 3 * 4
