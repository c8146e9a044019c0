"""Each training technique's measured effect on a digit generator, at an equal number of steps.

    python scripts/mnist_folders.py --out /tmp/mnist
    python scripts/compare_techniques.py --data /tmp/mnist --runs /tmp/techniques --steps 600

For every variant: `translate train DATA/train --recipe R --preset mnist --steps S --seed K --set ...`, then
`translate evaluate RUN --real DATA/heldout --features mnist --n N` (the shipped digit classifier's features,
1,000 held-out digits). The baseline turns EMA and augmentation off; every other row adds one technique to it.
Prints a Markdown table (FID, KID, precision, recall, the share of the rarest digit, wall time of the training;
0 for a run folder that already existed, which is evaluated again rather than retrained)
and writes every report to RUNS/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BASELINE = ["train.ema_half_life=0", "augment=none"]
VARIANTS: dict[str, list[str]] = {
    "baseline (no EMA, no augmentation)": [],
    "+ EMA (half-life 10k images)": ["train.ema_half_life=10000"],
    "+ DiffAugment": ["augment=diff"],
    "+ ADA": ["augment=ada"],
    "+ feature matching": ["feature_matching=true"],
    "+ minibatch discrimination (100 kernels)": ["minibatch_kernels=100"],
    "+ minibatch std": ["minibatch_std=true"],
    "+ historical averaging (λ 1e-4)": ["historical_averaging=0.0001"],
    "+ one-sided label smoothing (0.9)": ["real_label=0.9"],
}


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/<digit>/ and heldout/<digit>/")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--recipe", default="dcgan")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    parser.add_argument("--only", default="", help="comma-separated row numbers (0 = baseline) to run")
    args = parser.parse_args()
    chosen = {int(i) for i in args.only.split(",") if i} or set(range(len(VARIANTS)))
    translate = [sys.executable, "-m", "translate"]
    print("| variant | FID | KID | precision | recall | rarest digit | train s |")
    print("|---|---|---|---|---|---|---|")
    for index, (label, settings) in enumerate(VARIANTS.items()):
        if index not in chosen:
            continue
        name = f"{args.recipe}-{index}-seed{args.seed}"
        options = [part for s in [*BASELINE, *settings, "num_workers=1"] for part in ("--set", s)]
        start = time.perf_counter()
        if not (args.runs / name).is_dir():  # a run from an earlier invocation is evaluated again, not retrained
            run([*translate, "train", str(args.data / "train"), "--recipe", args.recipe, "--preset", "mnist",
                 "--steps", str(args.steps), "--seed", str(args.seed), "--out", str(args.runs), "--name", name,
                 *options])  # fmt: skip
        seconds = time.perf_counter() - start
        report_file = args.runs / f"{name}.json"
        run([*translate, "evaluate", str(args.runs / name), "--real", str(args.data / "heldout"), "--features",
             "mnist", "--n", str(args.n), "--seed", str(args.seed), "--json", str(report_file)])  # fmt: skip
        report = json.loads(report_file.read_text())
        found = report.get("classified", {})
        rarest = found.get("min_share", found.get("min_class", float("nan")))
        cells = [label, f"{report['fid']:.2f}", f"{report['kid_mean']:.3f}", f"{report['precision']:.3f}",
                 f"{report['recall']:.3f}", f"{rarest:.1%}", f"{seconds:.0f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |", flush=True)
        with (args.runs / "results.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"variant": label, "settings": settings, "seconds": seconds, **report}) + "\n")


if __name__ == "__main__":
    main()
