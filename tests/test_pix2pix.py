"""pix2pix end to end: paired data in both layouts (one jitter for both halves), the training step, exact resume,
and the command line from training (local folders and a downloaded dataset) to apply and ONNX export."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from httpserver import Server
from PIL import Image
from rich.console import Console
from safetensors.torch import load_file
from typer.testing import CliRunner, Result

from translate.cli import app
from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine
from translate.data.folders import load_resize, to_model_range
from translate.data.paired import PairedDataset, paired_sources, scan_pairs
from translate.errors import DataError
from translate.imageio import load_image
from translate.recipes import RECIPES
from translate.recipes.pix2pix import Pix2Pix, Pix2PixConfig, make_data
from translate.training.launch import complete_config
from translate.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
# B's colour channels are A's rotated, B[..., c] = A[..., PERM[c]]: a pixel-exact relation that survives any
# per-channel resize, and one that is not its own inverse, so swapped halves or directions cannot pass for it.
PERM, INVERSE = [2, 0, 1], [1, 2, 0]
TINY = ["--image-size", "64", "--set", "generator_channels=8", "--set", "discriminator_channels=8"]
TINY += ["--set", "num_workers=0", "--device", "cpu", "--precision", "fp32"]


# --------------------------------------------------------------------------------------------- helpers


def _noise(height: int, width: int, seed: int) -> np.ndarray:
    """Random RGB pixels, (H, W, 3) uint8: no symmetry, so any crop or flip is recognisable."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(path)
    return path


def _side_by_side(folder: Path, name: str, a: np.ndarray, b: np.ndarray, *, middle: int = 0) -> Path:
    """One file holding A on the left and B on the right (with `middle` extra columns between, which the loader
    drops: the public datasets have even widths, an odd one loses its middle column)."""
    gap = np.full((a.shape[0], middle, a.shape[2]), 7, np.uint8)
    return _save(folder / name, np.concatenate([a, gap, b], axis=1))


def _pair(seed: int, height: int = 30, width: int = 36) -> tuple[np.ndarray, np.ndarray]:
    a = _noise(height, width, seed)
    return a, np.ascontiguousarray(a[..., PERM])


def _quiet() -> Console:
    """A console that records what it prints (warnings are checked by text) without showing it."""
    return Console(record=True, width=400, file=io.StringIO())


def _cli(*args: str | Path) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args])


def _locate(crop: np.ndarray, images: list[np.ndarray]) -> tuple[int, int, int, bool]:
    """(image index, top, left, flipped) of the only window of `images` that equals `crop` (H, W, C)."""
    size = crop.shape[0]
    found = []
    for index, image in enumerate(images):
        for flipped in (False, True):
            source = image[:, ::-1] if flipped else image
            for top in range(image.shape[0] - size + 1):
                for left in range(image.shape[1] - size + 1):
                    if np.array_equal(source[top : top + size, left : left + size], crop):
                        found.append((index, top, left, flipped))
    assert len(found) == 1, found
    return found[0]


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def side_by_side(tmp_path: Path) -> Path:
    """The public pix2pix layout: DATA/train/*.png and DATA/val/*.png, each file A|B (72 px halves)."""
    root = tmp_path / "sbs"
    for i in range(4):
        _side_by_side(root / "train", f"{i}.png", *_pair(i, 72, 72), middle=1 if i == 2 else 0)
    for i in range(2):
        _side_by_side(root / "val", f"{i}.png", *_pair(10 + i, 72, 72))
    return root


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """DATA/A and DATA/B with the same relative names (one in a sub-folder), 72 px."""
    root = tmp_path / "folders"
    for name, seed in (("x", 20), ("y", 21), ("sub/z", 22)):
        a, b = _pair(seed, 72, 72)
        _save(root / "A" / f"{name}.png", a)
        _save(root / "B" / f"{name}.png", b)
    return root


def tiny_config(steps: int, **extra: object) -> Pix2PixConfig:
    values = {
        "data.image_size": 64,  # a 6-level U-Net: one decoder level with dropout
        "generator_channels": 8,
        "discriminator_channels": 8,
        "num_workers": 0,
        "train.steps": steps,
        "log_every": 2,
        "preview_every": 3,
        "checkpoint_every": 3,
        **extra,
    }
    return apply_overrides(Pix2PixConfig(), values)


def make_trainer(config: Pix2PixConfig, data_root: Path, run_dir: Path, **engine_settings: bool) -> Trainer:
    engine = Engine("cpu", precision="fp32", **engine_settings)
    data = make_data(config, data_root, console=_quiet())
    config = complete_config(RECIPES["pix2pix"], config, data)
    return Trainer(Pix2Pix(config, engine), data, engine, run_dir, progress=False, console=_quiet())


# ------------------------------------------------------------------------------------------ paired data


@pytest.mark.parametrize("layout", ["side_by_side", "folders"])
def test_both_halves_get_the_same_crop_and_flip(layout: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(layout)
    train, held_out = paired_sources(root)
    pairs = scan_pairs(train, None, console=_quiet())
    assert pairs.channels == 3 and len(pairs) == (4 if layout == "side_by_side" else 3)
    assert (held_out is not None) == (layout == "side_by_side")
    data = PairedDataset(pairs, image_size=32, load_size=40, flip=True, seed=3)
    resized = [[load_resize(half, 40) for half in pairs.image(i)] for i in range(len(pairs))]
    seen = set()
    for counter in range(16):
        sample = data[counter]
        a, b = _hwc(sample["A"]), _hwc(sample["B"])
        assert sample["A"].shape == sample["B"].shape == (3, 32, 32) and sample["A"].dtype == torch.uint8
        assert np.array_equal(b, a[..., PERM])  # the known relation, pixel for pixel
        # ... because B is the very window of the same pair's B that A is of its A, mirrored alike
        where = _locate(a, [r[0] for r in resized])
        index, top, left, flipped = where
        expected = resized[index][1][:, ::-1] if flipped else resized[index][1]
        assert np.array_equal(b, expected[top : top + 32, left : left + 32])
        seen.add(where)
    assert {flipped for *_, flipped in seen} == {False, True}  # the jitter did run: both flips, several crops
    assert len({(top, left) for _, top, left, _ in seen}) > 4


def test_side_by_side_halves_are_split_in_the_middle(tmp_path: Path) -> None:
    a, b = _pair(0)
    _side_by_side(tmp_path / "even", "p.png", a, b)
    _side_by_side(tmp_path / "odd", "p.png", a, b, middle=1)
    for folder in ("even", "odd"):
        pairs = scan_pairs(paired_sources(tmp_path / folder)[0], 3, console=_quiet())
        left, right = pairs.image(0)
        assert np.array_equal(left, a) and np.array_equal(right, b)


def test_folders_match_by_name_whatever_the_extension(tmp_path: Path) -> None:
    ys, xs = np.mgrid[:30, :36]
    smooth = np.stack([xs * 7, ys * 8, (xs + ys) * 3], axis=2).astype(np.uint8)  # survives JPEG well
    _save(tmp_path / "A" / "x.png", smooth)
    (tmp_path / "B").mkdir()
    Image.fromarray(255 - smooth).save(tmp_path / "B" / "x.jpg", quality=95)
    _save(tmp_path / "A" / "deep" / "y.png", smooth)
    _save(tmp_path / "B" / "deep" / "y.webp", smooth)
    _save(tmp_path / "B" / "y.png", smooth)  # the same stem in another folder: not deep/y's partner
    console = _quiet()
    pairs = scan_pairs(paired_sources(tmp_path)[0], 3, console=console)
    assert [tuple(p.relative_to(tmp_path).as_posix() for p in files) for files in pairs.files] == [
        ("A/deep/y.png", "B/deep/y.webp"),
        ("A/x.png", "B/x.jpg"),
    ]
    assert np.abs(pairs.image(1)[1].astype(int) - (255 - smooth)).mean() < 3  # x.jpg, through a lossy format
    text = " ".join(console.export_text().split())
    assert f"1 image(s) in {tmp_path / 'B'} have no file of the same name" in text and text.endswith("left out: y")


def test_unmatched_names_are_listed_and_skipped(folders: Path) -> None:
    a, b = _pair(5, 72, 72)
    _save(folders / "A" / "only_in_a.png", a)
    _save(folders / "B" / "only_in_b.png", b)
    _save(folders / "B" / "sub" / "also_b.png", b)
    console = _quiet()
    pairs = scan_pairs(paired_sources(folders)[0], None, console=console)
    text = " ".join(console.export_text().split())
    assert len(pairs) == 3
    assert f"1 image(s) in {folders / 'A'} have no file of the same name in {folders / 'B'}" in text
    assert f"2 image(s) in {folders / 'B'} have no file" in text
    assert "only_in_a" in text and "only_in_b, sub/also_b" in text


def test_nothing_to_pair_is_a_clear_error(tmp_path: Path) -> None:
    _save(tmp_path / "A" / "one.png", _noise(8, 8, 0))
    _save(tmp_path / "B" / "two.png", _noise(8, 8, 1))
    with pytest.raises(DataError, match="no file name appears in both") as exc:
        scan_pairs(paired_sources(tmp_path)[0], None, console=_quiet())
    assert str(tmp_path / "A") in str(exc.value) and str(tmp_path / "B") in str(exc.value)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no image found") as exc:
        scan_pairs(paired_sources(tmp_path / "empty")[0], None, console=_quiet())
    assert str(tmp_path / "empty" / "train") in str(exc.value)
    with pytest.raises(DataError, match="no such folder"):
        paired_sources(tmp_path / "missing")
    with pytest.raises(DataError, match="both --domain-a and --domain-b"):
        paired_sources(None, tmp_path / "A", None)


def test_a_corrupt_file_skips_only_its_pair(side_by_side: Path, folders: Path) -> None:
    (side_by_side / "train" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _save(side_by_side / "train" / "thin.png", _noise(8, 1, 0))  # 1 px wide: no halves to split
    (folders / "B" / "y.png").write_bytes((folders / "B" / "x.png").read_bytes()[:80])  # truncated
    for root, kept, bad in ((side_by_side, 3, ["1.png", "thin.png"]), (folders, 2, ["y.png"])):
        console = _quiet()
        pairs = scan_pairs(paired_sources(root)[0], None, console=console)
        text = " ".join(console.export_text().split())
        assert len(pairs) == kept and f"skipped {len(bad)} unreadable pair(s)" in text
        assert all(name in text for name in bad)
        assert not any(name in str(files) for files in pairs.files for name in bad)
    for path in (side_by_side / "train").iterdir():
        path.write_bytes(b"nothing")
    with pytest.raises(DataError, match="no usable pair"):
        scan_pairs(paired_sources(side_by_side)[0], None, console=_quiet())


@pytest.mark.parametrize("layout", ["side_by_side", "folders"])
def test_direction_b2a_swaps_input_and_target(layout: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(layout)
    config = tiny_config(1, **{"data.image_size": 32})
    a2b = make_data(config, root, console=_quiet())
    b2a = make_data(apply_overrides(config, {"direction": "b2a"}), root, console=_quiet())
    assert "input A" in a2b.summary and "input B" in b2a.summary
    for counter in range(4):
        forward, backward = a2b.dataset[counter], b2a.dataset[counter]
        assert torch.equal(forward["A"], backward["B"]) and torch.equal(forward["B"], backward["A"])
        assert torch.equal(backward["A"], forward["A"][PERM]) and torch.equal(backward["B"], backward["A"][INVERSE])
    assert torch.equal(a2b.preview["A"], b2a.preview["B"]) and torch.equal(a2b.preview["B"], b2a.preview["A"])


def test_preview_pairs_come_from_val(side_by_side: Path) -> None:
    data = make_data(tiny_config(1), side_by_side, console=_quiet())
    assert data.preview["A"].shape == data.preview["B"].shape == (2, 3, 64, 64)  # the 2 val pairs
    assert "4 pairs (side by side, RGB)" in data.summary


def test_channels_are_one_when_every_half_is_gray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        gray = _noise(20, 24, i)[..., :1]
        _side_by_side(tmp_path / "gray", f"{i}.png", gray, 255 - gray)
    _side_by_side(tmp_path / "mixed", "0.png", *(np.repeat(_noise(20, 24, 0)[..., :1], 3, axis=2),) * 2)
    _side_by_side(tmp_path / "mixed", "1.png", *_pair(1, 20, 24))  # one colour half makes the set RGB

    def samples(folder: str) -> tuple[int, torch.Tensor]:
        pairs = scan_pairs(paired_sources(tmp_path / folder)[0], None, console=_quiet())
        data = PairedDataset(pairs, image_size=16, load_size=20, flip=True, seed=0)
        return pairs.channels, torch.stack([torch.cat([data[c]["A"], data[c]["B"]]) for c in range(6)])

    channels, cached = samples("gray")
    assert channels == 1 and cached.shape == (6, 2, 16, 16)
    assert samples("mixed")[0] == 3
    # Sets too large to keep in memory are decoded again on each use: the samples are the same.
    monkeypatch.setattr("translate.data.paired.CACHE_LIMIT_BYTES", 0)
    channels, decoded = samples("gray")
    assert channels == 1 and torch.equal(decoded, cached)


# ------------------------------------------------------------------------------------------------ training


def test_one_step_updates_both_networks_and_reports_finite_losses(side_by_side: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_config(1), side_by_side, tmp_path / "run")
    recipe = trainer.recipe
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in recipe.modules().items()}
    batch = to_model_range({k: torch.stack([trainer.data.dataset[c][k] for c in (0, 1)]) for k in ("A", "B")})
    metrics = recipe.train_step(batch, 0)
    assert {"G", "D", "adv", "L1", "D_real", "D_fake"} <= metrics.keys()
    assert all(torch.isfinite(v) and v.ndim == 0 for v in metrics.values())
    assert float(metrics["L1"]) > 0 and float(metrics["adv"]) > 0
    torch.testing.assert_close(metrics["G"], metrics["adv"] + metrics["L1"])
    torch.testing.assert_close(metrics["D"], 0.5 * (metrics["D_real"] + metrics["D_fake"]))
    for name, module in recipe.modules().items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True)]
        assert all(changed), name  # every parameter of G and of D moved
    rows = recipe.preview(trainer.data.preview)  # input, G(input) in eval mode, target
    assert [label for label, _ in rows] == ["input", "G(input)", "target"]
    assert [r.shape for _, r in rows] == [(2, 3, 64, 64)] * 3 and torch.equal(rows[0][1], trainer.data.preview["A"])
    assert recipe.modules()["G"].training  # back in training mode after the preview


@pytest.mark.parametrize("layout", ["side_by_side", "folders"])
def test_resume_is_bit_identical(layout: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    root = request.getfixturevalue(layout)
    config = tiny_config(6)
    straight = make_trainer(config, root, tmp_path / "straight").fit()

    make_trainer(config, root, tmp_path / "split").fit(stop_at=3)
    resumed = make_trainer(config, root, tmp_path / "split")
    start = resumed.restore(checkpoint.read(checkpoint.latest_checkpoint(tmp_path / "split")))
    assert start == 3
    split = resumed.fit(start)
    # Everything in the file: weights, batch-norm statistics, Adam moments, the RNG that draws dropout.
    wa, wb = load_file(str(straight)), load_file(str(split))
    assert wa.keys() == wb.keys() and any("running_mean" in k for k in wa)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    lines = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 6] and all(r["L1"] > 0 for r in lines)


def test_gradient_checkpointing_trains_the_same_model(side_by_side: Path, tmp_path: Path) -> None:
    # An engine setting, not config: batch norm's running statistics (which apply uses) must not move twice per
    # step because the checkpointed blocks run again in backward.
    config = tiny_config(3)
    plain = make_trainer(config, side_by_side, tmp_path / "plain").fit()
    saving = make_trainer(config, side_by_side, tmp_path / "saving", grad_checkpointing=True)
    assert saving.recipe.modules()["G"].gradient_checkpointing
    wa, wb = load_file(str(plain)), load_file(str(saving.fit()))
    assert wa["G.up.1.2.num_batches_tracked"] == wb["G.up.1.2.num_batches_tracked"] == 3
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-4, atol=1e-6, msg=key)


# ----------------------------------------------------------------------------------------- command line


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Inputs of sizes that are not multiples of the U-Net's stride (64), one in a sub-folder, one gray."""
    root = tmp_path / "photos"
    _save(root / "wide.png", _noise(37, 90, 0))
    _save(root / "sub" / "square.png", _noise(64, 64, 1))
    _save(root / "gray.png", _noise(30, 21, 2)[..., :1])
    return root


def test_cli_trains_on_side_by_side_pairs_then_applies_deterministically_and_exports(
    side_by_side: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    trained = _cli("train", side_by_side, "--recipe", "pix2pix", "--steps", "2", "--out", out, *TINY)
    assert trained.exit_code == 0, trained.output
    run = out / "sbs"
    assert "pix2pix: training for 2 steps on 4 pairs (side by side, RGB), input A" in " ".join(trained.output.split())
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"] == "pix2pix" and saved["config"]["direction"] == "a2b"
    assert saved["config"]["data"]["channels"] == 3
    # 3 rows (input, output, target) of the 2 val pairs at 64 px, 2 px padding, after the row labels
    width, height = Image.open(run / "previews" / "step_00000002.png").size
    assert width > 2 * 64 + 3 * 2 and height == 3 * 64 + 4 * 2

    runs = {}
    for name, model in (("first", run), ("again", run)):
        result = _cli("apply", photos, "--model", model, "--out", tmp_path / name, "--device", "cpu")
        assert result.exit_code == 0, result.output
        runs[name] = tmp_path / name
    first = _outputs(runs["first"])
    assert sorted(first) == ["gray.png", "sub/square.png", "wide.png"]
    for name, image in first.items():
        assert image.shape[:2] == load_image(photos / name).shape[:2]  # the input's size, whatever the stride
    for name in first:  # eval mode: dropout off and batch norm on its running statistics, so byte for byte
        assert (runs["first"] / name).read_bytes() == (runs["again"] / name).read_bytes(), name

    onnx_file = tmp_path / "p2p.onnx"
    exported = _cli("export", run, "--out", onnx_file)
    assert exported.exit_code == 0, exported.output
    applied = _cli("apply", photos, "--model", onnx_file, "--out", tmp_path / "onnx", "--device", "cpu")
    assert applied.exit_code == 0, applied.output
    through_onnx = _outputs(tmp_path / "onnx")
    assert through_onnx.keys() == first.keys()
    for name, image in first.items():
        assert through_onnx[name].shape == image.shape
        assert np.abs(through_onnx[name].astype(int) - image).max() <= 2, name


@pytest.mark.parametrize(
    ("layout", "model", "summary"),
    [
        ("side_by_side", [], "4 pairs (side by side, RGB), input B"),  # train/ (and val/): paired
        ("folders", [], "3 pairs (A/ and B/ folders, RGB), input B"),  # A/ and B/: paired
        ("folders", ["--recipe", "pix2pix"], "3 pairs (A/ and B/ folders, RGB), input B"),
        ("nested_folders", [], "3 pairs (A/ and B/ folders, RGB), input B"),  # train/A, train/B, val/A, val/B
    ],
)
def test_cli_trains_pix2pix_on_each_layout_in_either_direction(
    layout: str, model: list[str], summary: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if layout == "nested_folders":
        root = request.getfixturevalue("folders")
        (root / "train").mkdir()
        for name in ("A", "B"):
            (root / name).rename(root / "train" / name)
            _save(root / "val" / name / "v.png", _pair(9, 72, 72)[name == "B"])
    else:
        root = request.getfixturevalue(layout)
    out = tmp_path / "runs"
    result = _cli("train", root, *model, "--steps", "1", "--direction", "b2a", "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    assert f"pix2pix: training for 1 steps on {summary}" in " ".join(result.output.split())
    run = out / root.name
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"] == "pix2pix" and saved["config"]["direction"] == "b2a"
    assert checkpoint.latest_checkpoint(run).name == "step_00000001.safetensors"
    columns = 2 if layout == "side_by_side" else 1 if layout == "nested_folders" else 3  # val/ pairs, else train's
    width, height = Image.open(run / "previews" / "step_00000001.png").size  # after the row labels
    assert width > columns * 64 + (columns + 1) * 2 and height == 3 * 64 + 4 * 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--direction", "b2a"], "--direction is for paired training (pix2pix); cyclegan does not take it"),
        (["--recipe", "cyclegan", "--direction", "a2b"], "cyclegan does not take it"),
        (["--recipe", "pix2pix", "--direction", "up", "--steps", "1"], "'up' is not one of 'a2b', 'b2a'"),
    ],
)
def test_cli_direction_errors_are_usage_errors(
    unpaired_data: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    result = _cli("train", unpaired_data, *args, "--out", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_known_paired_dataset_is_downloaded_and_trained_on(server: Server, tmp_path: Path) -> None:
    archive = server.root / "pix2pix" / "datasets" / "facades.tar.gz"
    archive.parent.mkdir(parents=True)
    staging = tmp_path / "facades"
    for split, count in (("train", 3), ("val", 2)):
        for i in range(count):
            _side_by_side(staging / split, f"{i + 1}.jpg", *_pair(40 + i, 72, 72))
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(staging, arcname="facades")
    out = tmp_path / "runs"
    result = _cli("train", "facades", "--recipe", "pix2pix", "--steps", "1", "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    assert "3 pairs (side by side, RGB)" in " ".join(result.output.split())
    assert checkpoint.latest_checkpoint(out / "facades") is not None
    cached = Path(os.environ["TRANSLATE_HOME"]) / "datasets" / "pix2pix" / "facades"
    assert sorted(p.name for p in (cached / "train").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
    assert (cached / "val").is_dir()
