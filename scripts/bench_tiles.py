"""Tiled translation (translate.backends.tiles): peak memory of `translate apply` on huge images, and how far tiled
outputs are from whole-image translation.

    python scripts/bench_tiles.py memory --work /tmp/bench-tiles --sizes 4000x3000,8000x6000
    python scripts/bench_tiles.py threshold --work /tmp/bench-tiles
    python scripts/bench_tiles.py difference --work /tmp/bench-tiles --trained RUN --picture samples/tiled.png

`memory`: each case is a fresh process that runs `translate apply IMAGE --model M --out OUT [--tile N]` in-process
and reports its peak resident set (ru_maxrss: imports, model, decoding, tiles, encoding) and wall time. The model
is an untrained CycleGAN ResNet-9 generator at the paper's size (64 channels, 9 blocks), as a checkpoint
(PyTorch) and as its fp32 export (ONNX Runtime); weights do not change memory or time. Images are JPEGs upscaled
from scikit-learn's sample photographs. `threshold`: the same at 1, 2 and 4 Mpx, whole (`--tile 0`) and tiled
(`--tile 768`), for the automatic-tiling threshold.

`difference`: tiled against whole-image outputs of the same network, in 0–255 units (max and mean |Δ| over all
pixel values), on images small enough for both: the shipped `ming2kai` (pix2pix U-Net, batch norm) on a page of
its sample glyphs, and ResNet-9 CycleGANs (instance norm) on a mosaic of the sample photographs at their own
resolution (so full-resolution detail is real, not upscaled). Rows: tiles with the whole image's statistics
(the tiling alone), with statistics from downscaled copies of several sizes (what apply does, at STATS_PIXELS),
and with each tile normalised by its own statistics (tiling without shared statistics: the seams this avoids).
`--trained RUN` adds a briefly trained ResNet-9 (image-like outputs; an untrained one's are noise-like):

    python scripts/photo_crops.py --out /tmp/photos --layout unpaired --n 200 --size 96
    translate train /tmp/photos --image-size 64 --set num_blocks=9 --steps 400 --out /tmp/runs --name china2flower-r9

`--picture FILE` writes crops around a tile corner (whole | tiled | per-tile statistics) if under 300 KB.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photo_crops import source_photos

from translate.backends import tiles
from translate.deploy.inference import MIN_SIDE, Translator, run_model
from translate.deploy.models import load_translator
from translate.imageio import find_images, load_image

REPO = Path(__file__).resolve().parents[1]
PICTURE_LIMIT = 300_000  # bytes
CROP = 160  # px per panel of the picture


# ----------------------------------------------------------------------------------------------- inputs


def resnet9(work: Path) -> dict[str, Path]:
    """An untrained paper-size CycleGAN checkpoint and its fp32 ONNX export, made once in `work`."""
    checkpoint_path = work / "resnet9.safetensors"
    onnx_path = work / "resnet9.onnx"
    if not checkpoint_path.exists():
        import torch

        from translate.config import apply_overrides, to_dict
        from translate.core import checkpoint
        from translate.core.engine import Engine
        from translate.recipes import RECIPES

        spec = RECIPES["cyclegan"]
        overrides = {**spec.presets["paper"], "generator_channels": 64, "num_blocks": 9}
        config = apply_overrides(spec.config_class(), {**overrides, "data.channels": 3, "train.steps": 1})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            modules = spec.build(config, Engine("cpu")).modules()
        checkpoint.save(checkpoint_path, recipe="cyclegan", config=to_dict(config), step=1, modules=modules)
    if not onnx_path.exists():
        command = [sys.executable, "-m", "translate", "export", str(checkpoint_path), "--out", str(onnx_path)]
        subprocess.run(command, check=True)
    return {"PyTorch": checkpoint_path, "ONNX Runtime": onnx_path}


def upscaled_photo(work: Path, width: int, height: int) -> Path:
    """china.jpg resized to width × height, as a JPEG in `work` (made once)."""
    path = work / f"photo_{width}x{height}.jpg"
    if not path.exists():
        photo = source_photos()["china"].resize((width, height), Image.Resampling.BICUBIC)
        photo.save(path, quality=92)
    return path


def photo_mosaic(columns: int, rows: int) -> np.ndarray:
    """The two sample photographs (640×427) at their own resolution, alternating and mirrored, (H, W, 3) uint8."""
    photos = [np.asarray(photo) for photo in source_photos().values()]
    h, w = photos[0].shape[:2]
    out = np.empty((rows * h, columns * w, 3), np.uint8)
    for r in range(rows):
        for c in range(columns):
            photo = photos[(r + c) % 2]
            out[r * h : (r + 1) * h, c * w : (c + 1) * w] = photo[:, ::-1] if r % 2 else photo
    return out


def glyph_page(columns: int, rows: int, seed: int = 0) -> np.ndarray:
    """A page of the Ming glyphs in samples/ming (64 px each), in random order, (H, W, 1) uint8."""
    glyphs = [load_image(path, 1) for path in find_images(REPO / "samples" / "ming")]
    order = np.random.default_rng(seed).integers(0, len(glyphs), (rows, columns))
    return np.concatenate([np.concatenate([glyphs[i] for i in row], axis=1) for row in order], axis=0)


# ----------------------------------------------------------------------------------------------- memory


def run_case(model: Path, image: Path, out: Path, tile: int | None) -> None:
    """In a fresh process: `translate apply` in-process, then one JSON line with its peak memory and time."""
    from translate.cli import app

    argv = ["apply", str(image), "--model", str(model), "--out", str(out), "--overwrite", "--device", "cpu"]
    if tile is not None:
        argv += ["--tile", str(tile)]
    start = time.perf_counter()
    try:
        app(argv)
        code = 0
    except SystemExit as exc:  # typer's standalone mode always exits
        code = exc.code or 0
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_mb": round(peak), "seconds": round(seconds, 1), "exit": code}))


def measure(model: Path, image: Path, work: Path, tile: int | None) -> dict[str, float]:
    command = [sys.executable, __file__, "case", "--model", str(model), "--image", str(image)]
    command += ["--out", str(work / f"out{image.suffix}")] + (["--tile", str(tile)] if tile is not None else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"case failed: {' '.join(command)}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pixels_processed(width: int, height: int, tile: int, margin: int, stride: int) -> tuple[int, float]:
    """Tiles and the pixels they hold over the image's (the overlap's compute overhead)."""
    padded = [n + (-n % stride) for n in (height, width)]
    grid = tiles.tile_grid(*padded, tile, margin, stride)
    count = len(grid.tops) * len(grid.lefts)
    return count, count * grid.height * grid.width / (width * height)


def memory(work: Path, sizes: list[tuple[int, int]], cases: list[tuple[str, int | None]], results: Path) -> None:
    models = resnet9(work)
    margin = load_translator(str(models["ONNX Runtime"]), device="cpu").tiling().margin
    print("| image | backend | `--tile` | tiles | pixels run / image | peak RSS (MB) | wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    for width, height in sizes:
        image = upscaled_photo(work, width, height)
        for backend, tile in cases:
            side = tile if tile is not None else tiles.DEFAULT_TILE
            tiled = tiles.wants_tiles(height, width, tile)
            count, ratio = pixels_processed(width, height, side, margin, 4) if tiled else (1, 1.0)
            row = measure(models[backend], image, work, tile)
            what = "default" if tile is None else str(tile)
            cells = [f"{width}×{height}", backend, what, count, f"{ratio:.2f}", row["peak_mb"], row["seconds"]]
            print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)
            with results.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"size": [width, height], "backend": backend, "tile": tile, **row}) + "\n")


# ----------------------------------------------------------------------------------------------- difference


class PerTileStatistics:
    """A backend that ignores the shared statistics: each tile normalised by its own (tiling without them)."""

    def __init__(self, translator: Translator) -> None:
        self.translator, self.margin = translator, translator.tiling().margin

    def statistics(self, image: np.ndarray) -> tiles.Stats:
        return []

    def __call__(self, batch: np.ndarray, stats: tiles.Stats) -> np.ndarray:
        return self.translator(batch)


def apart(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(diff.max()), float(diff.mean())


def difference(
    work: Path, trained: Path | None, picture: Path | None, tile: int, sides: list[int], untrained: bool
) -> None:
    networks: list[tuple[str, str, np.ndarray, int]] = [
        ("ming2kai (pix2pix U-Net-6, batch norm)", "ming2kai", glyph_page(32, 24), 0),
    ]
    mosaic = photo_mosaic(3, 3)  # 1920×1281
    if trained is not None:
        networks.append((f"{trained.name} (ResNet-9, 400 steps)", str(trained), mosaic, tile))
    if untrained:
        networks.append(("untrained ResNet-9", str(resnet9(work)["PyTorch"]), mosaic, tile))
    panels: list[np.ndarray] = []
    print("| network | image | tiles | statistics | max abs diff | mean abs diff |")
    print("|---|---|---|---|---|---|")
    for name, model, image, requested in networks:
        translator = load_translator(model, device="cpu")
        backend = translator.tiling()
        stride, minimum = translator.stride, max(MIN_SIDE, translator.stride)
        h, w = image.shape[:2]
        count, _ = pixels_processed(w, h, requested, backend.margin, stride)
        side = tiles.tile_side(requested, backend.margin, stride)
        whole = run_model(translator, image[None])[0]
        exact = backend.statistics(tiles.statistics_input(image, stride, minimum, None))
        rows: list[tuple[str, tiles.Stats, tiles.TileBackend]] = []
        if exact:
            rows.append(("the whole image's", exact, backend))
            for pixels in sorted({side * side for side in sides} | {tiles.STATS_PIXELS}):
                copy = tiles.statistics_input(image, stride, minimum, pixels)
                default = " (apply's)" if pixels == tiles.STATS_PIXELS else ""
                rows.append((f"a {copy.shape[3]}×{copy.shape[2]} copy's{default}", backend.statistics(copy), backend))
            rows.append(("each tile its own", [], PerTileStatistics(translator)))
        else:
            rows.append(("none (batch norm)", exact, backend))
        shown = []  # for the picture: apply's tiles, then those with per-tile statistics
        for label, stats, runner in rows:
            tiled = tiles.translate_tiled(runner, image, stride=stride, tile=side, minimum=minimum, stats=stats)
            if "apply's" in label or "own" in label or len(rows) == 1:
                shown.append(tiled)
            most, mean = apart(tiled, whole)
            print(f"| {name} | {w}×{h} | {count} of {side} px | {label} | {most} | {mean:.3f} |", flush=True)
        if picture is not None and "untrained" not in name:  # an untrained network's noise is no picture of seams
            panels.append(corner_crops(image, whole, shown, side, backend.margin, stride))
    if picture is not None:
        save_picture(panels, picture)


def corner_crops(
    image: np.ndarray, whole: np.ndarray, tiled: list[np.ndarray], side: int, margin: int, stride: int
) -> np.ndarray:
    """Input | whole | each tiled output, CROP px around the first interior tile corner (hand-over centres)."""
    padded = [n + (-n % stride) for n in image.shape[:2]]
    grid = tiles.tile_grid(*padded, side, margin, stride)
    y = (grid.tops[1] + grid.tops[0] + grid.height) // 2  # centre of the first overlap, rows
    x = (grid.lefts[1] + grid.lefts[0] + grid.width) // 2
    top, left = max(0, y - CROP // 2), max(0, x - CROP // 2)
    crops = [a[top : top + CROP, left : left + CROP] for a in (image, whole, *tiled)]
    crops = [np.repeat(c, 3, axis=2) if c.shape[2] == 1 else c for c in crops]
    gap = np.full((CROP, 4, 3), 255, np.uint8)
    return np.concatenate([part for crop in crops for part in (crop, gap)][:-1], axis=1)


def save_picture(panels: list[np.ndarray], path: Path) -> None:
    width = max(panel.shape[1] for panel in panels)
    rows = [np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(buffer, format="PNG", optimize=True)
    if buffer.tell() >= PICTURE_LIMIT:
        print(f"picture: {buffer.tell()} bytes, not written (limit {PICTURE_LIMIT})")
        return
    path.write_bytes(buffer.getvalue())
    print(f"picture: wrote {path} ({buffer.tell()} bytes)")


# ----------------------------------------------------------------------------------------------- main


def size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("memory", "threshold", "difference"):
        command = sub.add_parser(name)
        command.add_argument("--work", type=Path, required=True, help="models, images and results are kept here")
    sub.choices["memory"].add_argument("--sizes", default="4000x3000,8000x6000")
    sub.choices["memory"].add_argument("--backends", default="ONNX Runtime,PyTorch")
    sub.choices["memory"].add_argument("--tile", type=int, default=None, help="default: automatic tiling")
    sub.choices["difference"].add_argument("--trained", type=Path, default=None, help="a trained ResNet-9 run")
    sub.choices["difference"].add_argument("--picture", type=Path, default=None)
    sub.choices["difference"].add_argument("--tile", type=int, default=tiles.DEFAULT_TILE)
    sub.choices["difference"].add_argument(
        "--stats-sides", default="256,512,1024", help="statistics also from copies of about these sides squared"
    )
    sub.choices["difference"].add_argument("--no-untrained", action="store_true", help="leave out the untrained one")
    case = sub.add_parser("case")  # one measured apply, in its own process
    for option in ("--model", "--image", "--out"):
        case.add_argument(option, type=Path, required=True)
    case.add_argument("--tile", type=int, default=None)
    args = parser.parse_args()
    if args.command == "case":
        run_case(args.model, args.image, args.out, args.tile)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.work / "results.jsonl"
    if args.command == "memory":
        cases = [(backend, args.tile) for backend in args.backends.split(",")]
        memory(args.work, [size(s) for s in args.sizes.split(",")], cases, results)
    elif args.command == "threshold":
        sizes = [(1155, 866), (1633, 1225), (2309, 1732)]  # 1, 2 and 4 Mpx at 4:3
        cases = [(backend, tile) for backend in ("ONNX Runtime", "PyTorch") for tile in (0, tiles.DEFAULT_TILE)]
        memory(args.work, sizes, cases, results)
    else:
        sides = [int(side) for side in args.stats_sides.split(",") if side]
        difference(args.work, args.trained, args.picture, args.tile, sides, not args.no_untrained)


if __name__ == "__main__":
    main()
