"""Unpaired translators side by side at an equal wall-clock budget: held-out L1, PSNR, SSIM (and ink IoU) beside
"output = input", seconds per step and peak memory.

    python scripts/unpaired_benchmark.py make --out /tmp/unpaired                  # photo tasks: tone, stylise
    python scripts/render_glyphs.py --out /tmp/glyphs-u --size 64 --train 2000 --test 400 --layout unpaired --seed 0
    python scripts/render_glyphs.py --out /tmp/glyphs-hei --size 64 --train 2000 --test 400 --layout unpaired \
        --seed 0 --kai-font /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc --kai-index 2
    python scripts/compare_unpaired.py --task tone=/tmp/unpaired/tone --task stylise=/tmp/unpaired/stylise \
        --task ming2kai=/tmp/glyphs-u --task ming2hei=/tmp/glyphs-hei --runs /tmp/compare-unpaired \
        --minutes 3 --jobs 2

Each TASK folder holds trainA, trainB, testA and testB (testB: the true translations of testA, same names). For
every task and variant: `translate train TASK --recipe R --preset P --image-size 64 [--set ...] --steps 1000000
--device cpu`, stopped by SIGTERM after --minutes (the trainer finishes its step, saves a checkpoint and exits),
then `translate evaluate RUN --input TASK/testA --real TASK/testB --features mnist --n N --json RUN.json`. Only the
paired figures are reported: the offline feature network is the digit one, whose FID means nothing on photographs.
With --jobs 2 two trainings run at once, one thread each (OMP_NUM_THREADS), so every variant gets the same share of
the machine. Peak memory is the training process's maximum resident set (wait4). Prints a Markdown table; an
existing run is evaluated again rather than retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from translate.core import checkpoint

TRANSLATE = [sys.executable, "-m", "translate"]
# name → (recipe, preset, settings). The same networks' width everywhere: 32 channels, 6 residual blocks, 64 px.
VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cyclegan": ("cyclegan", "paper", ()),
    "cyclegan-antialiased": ("cyclegan", "paper", ("resample=antialiased",)),
    "cut": ("cut", "cut", ()),
    "fastcut": ("cut", "fastcut", ()),
}
COMMON = ("generator_channels=32", "discriminator_channels=32", "num_blocks=6", "log_every=50")


def train(task: str, folder: Path, variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Train RUNS/TASK/VARIANT for --minutes; returns its wall seconds and peak resident memory (MB)."""
    runs = args.runs / task
    run = runs / variant
    stats = runs / f"{variant}.train.json"
    if run.exists() and stats.exists():
        return json.loads(stats.read_text())
    recipe, preset, own = VARIANTS[variant]
    command = [*TRANSLATE, "train", str(folder), "--recipe", recipe, "--preset", preset, "--seed", str(args.seed)]
    command += ["--image-size", str(args.image_size), "--steps", "1000000", "--device", "cpu"]
    command += ["--out", str(runs), "--name", variant]
    command += [item for setting in (*COMMON, *own) for item in ("--set", setting)]
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with (runs / f"{variant}.log").open("w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        timer = threading.Timer(args.minutes * 60, process.send_signal, (signal.SIGTERM,))
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak memory, not the largest child's
        timer.cancel()
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 130:  # a clean stop: the step finished, a checkpoint saved
        raise SystemExit(f"{task}/{variant}: training ended with {os.waitstatus_to_exitcode(status)}; see {log.name}")
    figures = {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}
    stats.write_text(json.dumps(figures))
    return figures


def evaluate(task: str, folder: Path, variant: str, args: argparse.Namespace) -> dict[str, float]:
    run, report = args.runs / task / variant, args.runs / task / f"{variant}.json"
    if not report.exists():
        command = [*TRANSLATE, "evaluate", str(run), "--input", str(folder / "testA"), "--real", str(folder / "testB")]
        command += ["--features", "mnist", "--n", str(args.n), "--seed", str(args.seed), "--device", "cpu"]
        subprocess.run([*command, "--json", str(report)], check=True, capture_output=True)
    figures = json.loads(report.read_text())["paired"]
    latest = checkpoint.latest_checkpoint(run)  # the one the stop saved
    assert latest is not None
    figures["steps"] = checkpoint.read(latest).step
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", required=True, help="NAME=FOLDER (trainA, trainB, testA, testB)")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--minutes", type=float, default=3.0, help="wall-clock training budget per run")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument("--threads", type=int, default=1, help="threads per training")
    parser.add_argument("--n", type=int, default=400, help="held-out test images scored, at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = {name: Path(folder) for name, _, folder in (item.partition("=") for item in args.task)}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    jobs = [(task, folder, variant) for task, folder in tasks.items() for variant in variants]
    with ThreadPoolExecutor(args.jobs) as pool:
        trained = list(pool.map(lambda job: train(*job, args), jobs))
    print(f"Equal wall time: {args.minutes:g} min per run, {args.jobs} at once, {args.threads} thread(s) each.\n")
    print("| task | recipe | steps | s/step | peak MB | L1 ↓ | PSNR ↑ | SSIM ↑ | ink IoU ↑ |")
    print("|---|---|---|---|---|---|---|---|---|")
    baseline_done: set[str] = set()
    for (task, folder, variant), stats in zip(jobs, trained, strict=True):
        f = evaluate(task, folder, variant, args)
        if task not in baseline_done:  # output = input: the floor any translator must clear
            baseline_done.add(task)
            cells = [task, "output = input", "", "", ""]
            cells += [f"{f['input_l1']:.4f}", f"{f['input_psnr']:.2f}", f"{f['input_ssim']:.4f}"]
            print("| " + " | ".join([*cells, f"{f['input_ink_iou']:.4f}"]) + " |")
        per_step = stats["seconds"] / max(1, f["steps"])
        cells = [task, variant, str(f["steps"]), f"{per_step:.3f}", f"{stats['peak_mb']:.0f}"]
        cells += [f"{f['output_l1']:.4f}", f"{f['output_psnr']:.2f}", f"{f['output_ssim']:.4f}"]
        print("| " + " | ".join([*cells, f"{f['output_ink_iou']:.4f}"]) + " |")


if __name__ == "__main__":
    main()
