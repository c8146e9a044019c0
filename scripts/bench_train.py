"""Training speed and peak memory of translate's recipes, one configuration per fresh process.

    python scripts/bench_train.py                      # CycleGAN at 64 px (ResNet-6 and -9) and 256 px (ResNet-9)
    python scripts/bench_train.py --only cyclegan-256 --iters 10

Each row: median seconds per training step over `--iters` steps after `--warmup` steps, on synthetic inputs
(the data pipeline runs in worker processes during real training and is not part of this figure), and the peak
resident memory of the process. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

CASES: dict[str, dict[str, object]] = {
    "cyclegan-64-resnet6": {"data.image_size": 64, "num_blocks": 6},
    "cyclegan-64-resnet9": {"data.image_size": 64, "num_blocks": 9},
    "cyclegan-256": {"data.image_size": 256, "num_blocks": 9},
}


def run_case(name: str, iters: int, warmup: int, device: str) -> dict[str, object]:
    import torch

    from translate.config import apply_overrides
    from translate.engine import Engine
    from translate.recipes.cyclegan import CycleGAN, CycleGANConfig

    values = {**CASES[name], "data.channels": 3, "train.steps": 1000}
    config = apply_overrides(CycleGANConfig(), values)
    engine = Engine(device)
    recipe = CycleGAN(config, engine)
    size = config.data.image_size
    generator = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for k in ("A", "B")}
    batch = engine.to_device(batch)
    times = []
    for step in range(warmup + iters):
        start = time.perf_counter()
        metrics = recipe.train_step(batch, step)
        float(metrics["G"])  # wait for the device
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": name,
        "s_per_it": statistics.median(times),
        "peak_rss_mb": peak_mb,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run just these cases")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.iters, args.warmup, args.device)))
        return
    rows = []
    for name in args.only or list(CASES):
        iters = args.iters if "256" not in name else max(3, args.iters // 4)
        cmd = [sys.executable, __file__, "--child", name, "--iters", str(iters), "--warmup", str(args.warmup)]
        out = subprocess.run([*cmd, "--device", args.device], check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1]['s_per_it']:.3f} s/it", file=sys.stderr)
    print(f"\n{platform.processor() or platform.machine()}, {rows[0]['threads']} threads, device {args.device}\n")
    print("| case | s/iteration (median) | peak RSS (MB) |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['s_per_it']:.3f} | {row['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
