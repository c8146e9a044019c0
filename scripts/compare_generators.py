"""Generator recipes side by side at an equal wall-clock budget: samples, FID, KID, precision and recall.

    python scripts/mnist_folders.py --out /tmp/mnist
    python scripts/compare_generators.py --data /tmp/mnist/train --real /tmp/mnist/heldout --preset mnist \
        --runs /tmp/compare-digits --minutes 6 --jobs 2

For every recipe (default: dcgan, wgan-gp, began): `translate train DATA --recipe R [--preset P] --seed K
--steps 1000000 --out RUNS --name R`, stopped by SIGTERM after --minutes (the trainer finishes its step, saves a
checkpoint and exits), then `translate evaluate RUNS/R --real REAL --features F --n N --json RUNS/R.json` and
`translate sample --model RUNS/R --n 64 --out RUNS/R.png`. `--set-for RECIPE:key=value` adds a setting to one
recipe only (e.g. `--set-for progan:phase_images=3000`, so that the growth fits the budget). With --jobs 2 two
trainings run at once, each on --threads threads (OMP_NUM_THREADS), so every recipe gets the same share of the
machine. Prints a Markdown table (steps and images reached in the budget, FID, KID, precision, recall); an
existing RUNS/R is evaluated again rather than retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from translate.core import checkpoint

TRANSLATE = [sys.executable, "-m", "translate"]


def train(recipe: str, args: argparse.Namespace) -> float:
    """Train RUNS/RECIPE for --minutes of wall clock; returns the seconds it ran (0 when the run existed)."""
    run = args.runs / recipe
    if run.exists():
        return 0.0
    command = [*TRANSLATE, "train", str(args.data), "--recipe", recipe, "--seed", str(args.seed)]
    command += ["--steps", "1000000", "--out", str(args.runs), "--name", recipe, "--device", "cpu"]
    command += ["--preset", args.preset] if args.preset else []
    command += [item for setting in args.set for item in ("--set", setting)]
    own = [item.split(":", 1)[1] for item in args.set_for if item.split(":", 1)[0] == recipe]
    command += [item for setting in own for item in ("--set", setting)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    log = (args.runs / f"{recipe}.log").open("w")
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        process.wait(timeout=args.minutes * 60)
        raise SystemExit(f"{recipe}: training ended early (exit {process.returncode}); see {log.name}")
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # finishes the step, saves a checkpoint, exits 130
        if process.wait() != 130:
            raise SystemExit(f"{recipe}: no clean stop (exit {process.returncode}); see {log.name}") from None
    return time.perf_counter() - start


def evaluate(recipe: str, args: argparse.Namespace) -> dict[str, object]:
    run, report = args.runs / recipe, args.runs / f"{recipe}.json"
    command = [*TRANSLATE, "evaluate", str(run), "--real", str(args.real), "--features", args.features]
    command += ["--n", str(args.n), "--seed", str(args.seed), "--device", "cpu", "--json", str(report)]
    subprocess.run(command, check=True, capture_output=True)
    picture = [*TRANSLATE, "sample", "--model", str(run), "--n", "64", "--seed", str(args.seed), "--device", "cpu"]
    subprocess.run([*picture, "--out", str(args.runs / f"{recipe}.png")], check=True, capture_output=True)
    figures = json.loads(report.read_text())
    latest = checkpoint.latest_checkpoint(run)  # the one the stop saved
    assert latest is not None
    saved = checkpoint.read(latest)
    figures["steps"], figures["images"] = saved.step, saved.meta["info"].get("samples", 0)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the training images")
    parser.add_argument("--real", type=Path, required=True, help="held-out real images to compare with")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--recipes", default="dcgan,wgan-gp,began")
    parser.add_argument("--preset", default="", help="a preset every recipe has (mnist, paper)")
    parser.add_argument("--set", action="append", default=[], help="a setting for every recipe, key=value")
    parser.add_argument(
        "--set-for", action="append", default=[], help="a setting for one recipe, RECIPE:key=value (progan's phases)"
    )
    parser.add_argument("--minutes", type=float, default=6.0, help="wall-clock training budget per recipe")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    parser.add_argument("--threads", type=int, default=1, help="threads per training")
    parser.add_argument("--features", default="mnist")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    with ThreadPoolExecutor(args.jobs) as pool:
        seconds = dict(zip(recipes, pool.map(lambda r: train(r, args), recipes), strict=True))
    print(f"| recipe | steps in {args.minutes:g} min | images seen | FID | KID | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for recipe in recipes:
        f = evaluate(recipe, args)
        kid = f"{f['kid_mean']:.4f} ± {f['kid_std']:.4f}"
        cells = [recipe, str(f["steps"]), str(f["images"]), f"{f['fid']:.1f}", kid]
        print("| " + " | ".join([*cells, f"{f['precision']:.3f}", f"{f['recall']:.3f}"]) + " |")
        (args.runs / f"{recipe}.seconds").write_text(f"{seconds[recipe]:.1f}\n")


if __name__ == "__main__":
    main()
