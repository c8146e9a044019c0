"""Training speed and peak memory: each recipe's plain configuration against the engine's fast one.

    python scripts/bench_train.py                          # every case on the current device (CUDA if present)
    python scripts/bench_train.py --only cyclegan-256 --iters 10 --device cpu
    python scripts/bench_train.py --only cyclegan-512 --variants fast,fast+ckpt   # gradient checkpointing memory

Variants, each in a fresh process (so peak memory is its own):
- plain: fp32, contiguous memory, no compile, and the loss read back after every step (a host sync per step,
  as a naive loop does: no overlap of the host with the device);
- fast: the engine's defaults: `--precision auto` (bf16 where the device has it natively), channels_last on CUDA,
  fused Adam on CUDA, cuDNN autotuning, losses read only at the end of the timed window;
- fast+compile: fast with torch.compile (CUDA by default; add it on the CPU with --variants);
- fast+ckpt: fast with gradient checkpointing in the generators.

Each row: steps/s (median over windows of `--iters` steps after `--warmup` steps, synthetic inputs already on
the device: the data pipeline runs in worker processes during training), peak memory (CUDA: the allocator's
peak; CPU: the process's peak RSS), the FLOPs of one training step (counted by torch.utils.flop_counter), and the
fraction of the device's matrix-multiply peak a step reaches (the peak is measured in the same run, in the
variant's precision). Prints Markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

# case -> (recipe, config overrides). Paper settings: CycleGAN ResNet-9 at 256 px and ResNet-6 at 128 px with
# batch 1; pix2pix U-Net-256 with batch 1; DCGAN 64 px with batch 64 (the setting; the paper used 128).
CASES: dict[str, tuple[str, dict[str, object]]] = {
    "cyclegan-256": ("cyclegan", {"data.image_size": 256, "train.batch_size": 1}),
    "cyclegan-128": ("cyclegan", {"data.image_size": 128, "train.batch_size": 1}),
    "pix2pix-256": ("pix2pix", {"data.image_size": 256, "train.batch_size": 1}),
    "dcgan-64": ("dcgan", {"data.image_size": 64, "train.batch_size": 64}),
    "cyclegan-512": ("cyclegan", {"data.image_size": 512, "train.batch_size": 1}),
}
DEFAULT_CASES = ("cyclegan-256", "cyclegan-128", "pix2pix-256", "dcgan-64")
VARIANTS = ("plain", "fast", "fast+compile", "fast+ckpt")


def build(case: str, variant: str, device: str):  # -> (recipe, engine, batch)
    import torch

    from translate.config import apply_overrides
    from translate.core.engine import Engine
    from translate.recipes import get_recipe

    recipe_name, overrides = CASES[case]
    spec = get_recipe(recipe_name)
    config = apply_overrides(spec.config_class(), {**overrides, "data.channels": 3, "train.steps": 100_000})
    if variant == "plain":
        engine = Engine(device, precision="fp32", channels_last=False)
    else:
        engine = Engine(device, compile="compile" in variant, grad_checkpointing="ckpt" in variant)
    recipe = spec.build(config, engine)
    n, size = config.train.batch_size, config.data.image_size
    generator = torch.Generator().manual_seed(0)
    if recipe_name in ("cyclegan", "pix2pix"):
        batch = {k: torch.rand(n, 3, size, size, generator=generator) * 2 - 1 for k in ("A", "B")}
    else:
        batch = {"image": torch.rand(n, 3, size, size, generator=generator) * 2 - 1, "label": torch.zeros(n).long()}
    return recipe, engine, engine.to_device(batch)


def matmul_peak(device: str, dtype_name: str) -> float:
    """Measured FLOP/s of a large square matrix product in `dtype_name` (fp32, tf32 or bf16)."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    n = 8192 if device.startswith("cuda") else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
    try:
        for _ in range(3):
            a @ b
        sync(device)
        reps = 20 if device.startswith("cuda") else 3
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        return 2 * n**3 * reps / (time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_flops(recipe, batch) -> int:
    """FLOPs of one training step (forward and backward convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        recipe.train_step(batch, 0)
    return counter.get_total_flops()


def run_case(case: str, variant: str, device: str, iters: int, warmup: int, windows: int) -> dict[str, object]:
    import torch

    recipe, engine, batch = build(case, variant, device)
    cuda = engine.device.type == "cuda"
    per_step_sync = variant == "plain"
    settings = contextlib.nullcontext() if variant == "plain" else engine.backend_settings()  # cuDNN autotuning
    with settings:
        for step in range(warmup):
            recipe.train_step(batch, step)
        sync(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        rates = []
        for window in range(windows):
            start = time.perf_counter()
            for i in range(iters):
                metrics = recipe.train_step(batch, warmup + window * iters + i)
                if per_step_sync:
                    float(metrics["G"])
            float(metrics["G"])  # waits for the device
            rates.append(iters / (time.perf_counter() - start))
        if cuda:
            peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        flops = step_flops(recipe, batch) if variant == "plain" else None
    # fp32 convolutions on CUDA run in TF32 (cuDNN's default), so that is the peak they are held against.
    peak_kind = "bf16" if engine.precision == "bf16" else ("tf32" if cuda else "fp32")
    return {
        "case": case,
        "variant": variant,
        "steps_per_s": statistics.median(rates),
        "peak_mb": peak_mb,
        "flops": flops,
        "precision": engine.precision,
        "channels_last": engine.channels_last,
        "peak_kind": peak_kind,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def child(args: argparse.Namespace) -> None:
    if args.child == "peak":
        print(json.dumps({kind: matmul_peak(args.device, kind) for kind in args.peaks.split(",")}))
        return
    case, variant = args.child.split(":")
    print(json.dumps(run_case(case, variant, args.device, args.iters, args.warmup, args.windows)))


def spawn(args: argparse.Namespace, what: str, iters: int, extra: list[str] | None = None) -> dict | None:
    """Run one measurement in a fresh process; None (and its error on stderr) when it fails."""
    cmd = [sys.executable, __file__, "--child", what, "--device", args.device, "--iters", str(iters)]
    cmd += ["--warmup", str(args.warmup), "--windows", str(args.windows), *(extra or [])]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{what} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run just these cases")
    parser.add_argument("--variants", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--iters", type=int, default=0, help="steps per timed window (default: by device/case)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--peaks", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        child(args)
        return
    cuda = args.device.startswith("cuda")
    variants = args.variants.split(",") if args.variants else ["plain", "fast", *(["fast+compile"] if cuda else [])]
    peak_kinds = "fp32,tf32,bf16" if cuda else "fp32,bf16"
    peaks = spawn(args, "peak", 1, ["--peaks", peak_kinds])
    if peaks is None:
        raise SystemExit("could not measure the matrix-multiply peak")
    rows = []
    for case in args.only or DEFAULT_CASES:
        for variant in variants:
            iters = args.iters or _default_iters(case, cuda)
            row = spawn(args, f"{case}:{variant}", iters)
            if row is None:
                continue  # a failed variant is reported above and left out of the table
            rows.append(row)
            print(f"{case} {variant}: {row['steps_per_s']:.3f} steps/s, {row['peak_mb']:.0f} MB", file=sys.stderr)
    if not rows:
        raise SystemExit("every measurement failed")
    print_tables(rows, peaks, args)


def _default_iters(case: str, cuda: bool) -> int:
    if cuda:
        return 50
    return {"cyclegan-512": 1, "cyclegan-256": 2, "cyclegan-128": 5, "pix2pix-256": 5, "dcgan-64": 5}[case]


def print_tables(rows: list[dict], peaks: dict[str, float], args: argparse.Namespace) -> None:
    first = rows[0]
    where = f"{first['device_name']}, {first['threads']} CPU threads, device {args.device}"
    measured = ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items())
    print(f"\n{where}; measured matrix-multiply peak: {measured}\n")
    print(
        "| case | variant | precision | channels_last | steps/s | vs plain | peak memory (MB) | TFLOP/step "
        "| % of matmul peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    plain = {r["case"]: r for r in rows if r["variant"] == "plain"}
    flops = {case: r["flops"] for case, r in plain.items()}
    for r in rows:
        base = plain.get(r["case"])
        ratio = f"{r['steps_per_s'] / base['steps_per_s']:.2f}×" if base else "–"
        step = flops.get(r["case"])
        tflop = f"{step / 1e12:.3f}" if step else "–"
        fraction = f"{100 * step * r['steps_per_s'] / peaks[r['peak_kind']]:.0f}% ({r['peak_kind']})" if step else "–"
        print(
            f"| {r['case']} | {r['variant']} | {r['precision']} | {'yes' if r['channels_last'] else 'no'} "
            f"| {r['steps_per_s']:.3f} | {ratio} | {r['peak_mb']:.0f} | {tflop} | {fraction} |"
        )


if __name__ == "__main__":
    main()
