"""Make the shipped `ming2kai` translator: Chinese glyphs in a Ming (Song) font → the same glyphs in a Kai font.

    python scripts/ming2kai.py render   --data /tmp/glyphs                    # 3000 train + 400 held-out characters
    python scripts/ming2kai.py train    --data /tmp/glyphs --runs /tmp/ming   # pix2pix (paired), CycleGAN (unpaired)
    python scripts/ming2kai.py evaluate --data /tmp/glyphs --runs /tmp/ming   # held-out table (markdown + JSON)
    python scripts/ming2kai.py ship     --data /tmp/glyphs --runs /tmp/ming --model pix2pix

`render` draws the glyph sets with scripts/render_glyphs.py in both layouts: train/A + train/B (paired, the same
3000 characters) and trainA + trainB (unpaired: two disjoint halves of them), and the 400 held-out characters in
test/A + test/B, disjoint from every training character. `train` runs `translate train` for both recipes and
records the exact commands and wall times. `evaluate` translates the held-out Ming glyphs and compares them with
the real Kai glyphs:
- ink IoU: pixels darker than mid-grey (< 128) are ink; intersection over union of the generated and real ink,
  per glyph, averaged. The main figure: glyphs are mostly white page, so L1 and SSIM reward a blank output.
- mean L1 on [0, 1] grey levels, and SSIM (Wang et al. 2004; 11×11 Gaussian window), both averaged over glyphs,
next to two baselines: "output = input" (the Ming glyph itself) and an all-white page. `ship` copies the chosen
generator (weights and config only) into pretrained/, records it in the manifest and writes samples/ming (held-out
inputs for `translate apply samples/ming --model ming2kai`), samples/kai (the same characters in the Kai font) and
samples/ming2kai.png (input / output / real Kai).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from translate.deploy.metrics import ssim
from translate.files import sha256_file
from translate.imageio import find_images, load_image, make_grid, save_image, to_float

REPO = Path(__file__).resolve().parents[1]
TRAIN_CHARACTERS, HELD_OUT_CHARACTERS, SIZE, SEED = 3000, 400, 64, 0
SAMPLES = 16  # held-out characters copied to samples/ming

# Both recipes see centred glyphs at the size they are applied at: no scale jitter (load size = crop size) and no
# flips (a mirrored character is not a character).
COMMON = ["--image-size", str(SIZE), "--no-flip", "--seed", str(SEED), "--set", f"load_size={SIZE}"]
RECIPES: dict[str, dict[str, object]] = {
    # Paired: the U-Net at 64 px (6 levels), 24 base channels to stay under 20 MB; batch 16 (32 epochs).
    "pix2pix": {
        "args": ["--steps", "6000", "--batch-size", "16", "--set", "generator_channels=24"],
    },
    # Unpaired: trainA and trainB hold different characters; ResNet-6 (the paper's choice below 256 px).
    "cyclegan": {
        "args": ["--steps", "2000", "--batch-size", "4", "--set", "generator_channels=32"],
    },
}
LOG = ["--set", "train.log_every=100", "--set", "train.checkpoint_every=1000", "--set", "train.preview_every=1000"]


def render(data: Path) -> None:
    command = [
        sys.executable, str(REPO / "scripts" / "render_glyphs.py"), "--out", str(data), "--size", str(SIZE),
        "--train", str(TRAIN_CHARACTERS), "--test", str(HELD_OUT_CHARACTERS), "--layout", "both",
        "--seed", str(SEED), "--overwrite",
    ]  # fmt: skip
    subprocess.run(command, check=True)


def train(data: Path, runs: Path, recipe: str) -> dict[str, object]:
    spec = RECIPES[recipe]
    command = ["translate", "train", str(data), "--recipe", recipe, "--out", str(runs), "--name", recipe]
    command += [*COMMON, *spec["args"]]  # type: ignore[list-item]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "translate", *command[1:], *LOG], check=True)
    record = {"command": shlex.join(command), "train_seconds": round(time.perf_counter() - start, 1)}
    (runs / recipe / "made.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def held_out(data: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """(Ming files, Ming glyphs, Kai glyphs) of the held-out characters, uint8 (N, H, W, 1): from test/A and
    test/B (the paired layout) or testA and testB (the unpaired one; its test characters are paired too)."""
    ming_dir, kai_dir = (data / "test" / "A", data / "test" / "B")
    if not ming_dir.is_dir():
        ming_dir, kai_dir = data / "testA", data / "testB"
    ming = find_images(ming_dir)
    kai = [kai_dir / path.name for path in ming]
    return ming, np.stack([load_image(p, 1) for p in ming]), np.stack([load_image(p, 1) for p in kai])


def scores(output: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Mean per-glyph ink IoU, L1 (grey levels in [0, 1]) and SSIM of uint8 (N, H, W, 1) outputs."""
    ink_out, ink_real = output < 128, real < 128
    union = (ink_out | ink_real).sum(axis=(1, 2, 3))
    iou = (ink_out & ink_real).sum(axis=(1, 2, 3)) / np.maximum(union, 1)
    l1 = np.abs(output.astype(np.float64) - real).mean(axis=(1, 2, 3)) / 255
    chw = (to_float(output), to_float(real))  # (N, 1, H, W) in [-1, 1]
    per_glyph = [ssim(chw[0][i : i + 1], chw[1][i : i + 1]) for i in range(len(output))]
    return {"ink_iou": float(iou.mean()), "l1": float(l1.mean()), "ssim": float(np.mean(per_glyph))}


def translate_glyphs(model: str, glyphs: np.ndarray, *, live: bool = False) -> np.ndarray:
    """Ming → Kai with the deployed generator (the moving average when the run kept one); `live`: with the last
    step's own weights instead."""
    from translate.backends.pytorch import TorchTranslator
    from translate.core import checkpoint
    from translate.deploy.inference import run_model
    from translate.deploy.models import load_translator
    from translate.recipes.restore import load_generator

    translator = load_translator(model, "a2b", "cpu")
    if live:
        latest = checkpoint.latest_checkpoint(Path(model))
        assert latest is not None
        module, description = load_generator(latest, "a2b")
        checkpoint.load_module(latest, "G_AB", module)
        translator = TorchTranslator(module, translator.device, description)
    return np.concatenate([run_model(translator, glyphs[i : i + 64]) for i in range(0, len(glyphs), 64)])


def keeps_average(run: Path) -> bool:
    from translate.core import checkpoint

    latest = checkpoint.latest_checkpoint(run)
    return latest is not None and "G_AB_ema" in checkpoint.read(latest).meta.get("modules", [])


def evaluate(data: Path, runs: Path) -> dict[str, dict[str, float]]:
    files, ming, kai = held_out(data)
    table = {
        "output = input (Ming glyph)": scores(ming, kai),
        "all-white page": scores(np.full_like(kai, 255), kai),
    }
    for recipe in RECIPES:
        if (runs / recipe / "checkpoints").is_dir():
            table[recipe] = scores(translate_glyphs(str(runs / recipe), ming), kai)
            if keeps_average(runs / recipe):  # the moving average above; the raw weights beside it
                live = translate_glyphs(str(runs / recipe), ming, live=True)
                table[f"{recipe} (last step's weights, no EMA)"] = scores(live, kai)
    print(f"held-out characters: {len(ming)} ({files[0].parent})\n")
    print("| model | ink IoU ↑ | L1 ↓ | SSIM ↑ |\n|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['ink_iou']:.3f} | {row['l1']:.3f} | {row['ssim']:.3f} |")
    (runs / "heldout.json").write_text(json.dumps(table, indent=2) + "\n")
    return table


def ship(data: Path, runs: Path, recipe: str) -> None:
    from translate.core import checkpoint
    from translate.recipes.restore import load_generator

    latest = checkpoint.latest_checkpoint(runs / recipe)
    if latest is None:
        raise SystemExit(f"{runs / recipe}: no checkpoint; run `train` first")
    made = json.loads((runs / recipe / "made.json").read_text())
    metrics = json.loads((runs / "heldout.json").read_text())[recipe]
    module, meta = load_generator(latest, "a2b")
    target = REPO / "pretrained" / "ming2kai.safetensors"
    record = {
        "name": "ming2kai",
        "recipe": meta["recipe"],
        "description": f"{SIZE} px Chinese glyphs: Ming (AR PL UMing) → Kai (AR PL UKai) calligraphy style",
        "data": (
            f"glyphs rendered by scripts/render_glyphs.py from Debian fonts-arphic-uming/ukai: {TRAIN_CHARACTERS} "
            f"training characters, {HELD_OUT_CHARACTERS} held-out characters (disjoint)"
        ),
        "steps": meta["step"],
        "seed": SEED,
        "command": made["command"],
        "train_seconds": made["train_seconds"],
        "machine": "2-core x86-64 CPU",
        "heldout": {k: round(v, 4) for k, v in metrics.items()},
    }
    checkpoint.save(
        target,
        recipe=meta["recipe"],
        config=meta["config"],
        step=meta["step"],
        modules={checkpoint_name(meta["recipe"]): module},
        info={"shipped": record},
    )
    manifest_path = REPO / "pretrained" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entries = {entry["name"]: entry for entry in manifest["models"]}
    entries["ming2kai"] = {**record, "file": target.name, "bytes": target.stat().st_size, "sha256": sha256_file(target)}
    manifest_path.write_text(json.dumps({"models": list(entries.values())}, indent=2) + "\n")
    write_samples(data)
    print(f"ming2kai: {target} ({target.stat().st_size / 1e6:.1f} MB) from {latest}", file=sys.stderr)


def checkpoint_name(recipe: str) -> str:
    """The module a translator's a2b generator is stored under."""
    from translate.recipes import get_recipe

    return get_recipe(recipe).directions["a2b"]


def write_samples(data: Path) -> None:
    """samples/ming and samples/kai: the first held-out glyphs in both fonts (inputs to try, and what the output
    should look like); samples/ming2kai.png: inputs, outputs and real Kai glyphs in three rows."""
    ming_files, ming, kai = held_out(data)
    for name, domain in (("ming", "A"), ("kai", "B")):
        folder = REPO / "samples" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in ming_files[:SAMPLES]:
            shutil.copy(data / "test" / domain / path.name, folder / path.name)
    output = translate_glyphs("ming2kai", ming[:SAMPLES])
    rows = np.concatenate([ming[:SAMPLES], output, kai[:SAMPLES]])  # (3·S, H, W, 1)
    save_image(REPO / "samples" / "ming2kai.png", make_grid(rows, ncols=SAMPLES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("render", "train", "evaluate", "ship"))
    parser.add_argument("--data", type=Path, default=Path("/tmp/glyphs"), help="rendered glyph sets")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/ming"), help="folder of the training runs")
    parser.add_argument("--model", choices=sorted(RECIPES), action="append", help="recipe(s) to train, or to ship")
    args = parser.parse_args()
    if args.step == "render":
        render(args.data)
    elif args.step == "train":
        for recipe in args.model or list(RECIPES):
            print(f"{recipe}: {train(args.data, args.runs, recipe)}", file=sys.stderr)
    elif args.step == "evaluate":
        evaluate(args.data, args.runs)
    else:
        if not args.model or len(args.model) != 1:
            parser.error("ship needs exactly one --model")
        ship(args.data, args.runs, args.model[0])


if __name__ == "__main__":
    main()
