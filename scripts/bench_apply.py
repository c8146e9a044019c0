"""Benchmark `translate apply` end to end (decode → model → encode) against the pure model time, per backend.

    python scripts/bench_apply.py --model runs/china2flower          # a trained ResNet-9 CycleGAN run
    python scripts/bench_apply.py                                     # a freshly initialised ResNet-9 generator

Backends: PyTorch eager fp32, ONNX Runtime fp32 and int8 (calibrated on separate images) on the CPU; when OpenVINO
is installed, OpenVINO fp32 (the same .onnx file), bf16 (an IR export, on CPUs with bf16 arithmetic) and int8 (an
NNCF IR export, same calibration images); with a CUDA GPU also PyTorch CUDA fp32 and ONNX Runtime CUDA fp32 / fp16.
For each: the pure model time (the backend called on already-decoded batches, median over --iters calls after
warm-up), end-to-end images/s of `translate_files` over the whole folder, the end-to-end overhead over the model
time, and SSIM of the outputs against PyTorch fp32's. The goals of the OpenVINO backend follow the table, as ratios
within the same run.

Without --images, 64 random 256×256 crops of scikit-learn's two sample photographs are written (see
photo_crops.py); the int8 calibration set is another 64 crops with a different seed. Trained weights matter for
the SSIM column: a random generator's activations are not representative of what int8 must cover.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photo_crops import random_crop, source_photos

from translate.backends.openvino import has_bf16, openvino_installed
from translate.deploy.inference import plan, run_model, translate_files
from translate.deploy.metrics import ssim
from translate.imageio import find_images, load_image, to_float


def write_crops(folder: Path, n: int, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    photos = list(source_photos().values())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        random_crop(photos[i % len(photos)], size, rng).save(folder / f"crop_{i:04d}.jpg", quality=92)
    return folder


def fresh_checkpoint(folder: Path) -> Path:
    """A randomly initialised paper-default CycleGAN (ResNet-9, 64 channels) checkpoint."""
    from translate.config import apply_overrides, to_dict
    from translate.core import checkpoint
    from translate.core.engine import Engine
    from translate.recipes.cyclegan import CycleGAN, CycleGANConfig

    config = apply_overrides(CycleGANConfig(), {"data.channels": 3, "train.steps": 1})
    path = checkpoint.checkpoint_path(folder, 0)
    checkpoint.save(
        path, recipe="cyclegan", config=to_dict(config), step=0, modules=CycleGAN(config, Engine("cpu")).modules()
    )
    return path


REFERENCE_IPS = 2.08  # the original CycleGAN code's test.py, end to end on this CPU (TARGETS.md)
MIN_SSIM = 0.97  # "keeps the picture": SSIM against fp32 of a fast path that counts for the goal


@dataclasses.dataclass
class Row:
    backend: str
    model_s: float  # pure model seconds per image
    e2e_ips: float  # end-to-end images per second
    ssim: float | None


def measure(name: str, translator, images: Path, out: Path, batch: np.ndarray, iters: int) -> tuple[Row, Path]:
    for _ in range(2):  # warm-up: first-call allocations, ORT's first-run graph work
        run_model(translator, batch)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run_model(translator, batch)
        times.append(time.perf_counter() - start)
    model_s = statistics.median(times) / len(batch)
    jobs = plan(images, out, ext=".png", overwrite=True).jobs
    summary = translate_files(jobs, translator, batch_size=len(batch), progress=False)
    if summary.failed:
        raise SystemExit(f"{name}: {len(summary.failed)} images failed: {summary.failed[0]}")
    return Row(name, model_s, summary.images_per_second, None), out


def outputs(folder: Path) -> np.ndarray:
    return np.stack([to_float(load_image(p, 3)) for p in find_images(folder)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a ResNet-9 CycleGAN run folder or checkpoint (default: fresh weights)")
    parser.add_argument("--images", type=Path, help="folder of input images (default: 64 photo crops, 256 px)")
    parser.add_argument("--calibrate", type=Path, help="int8 calibration images (default: 64 other crops)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5, help="timed model calls (median)")
    parser.add_argument("--skip-torch", action="store_true", help="only the exported models' rows")
    args = parser.parse_args()

    from translate.backends.onnxruntime import cuda_devices, physical_cores
    from translate.deploy.export import export
    from translate.deploy.models import load_translator

    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp_name:
        tmp = Path(tmp_name)
        images = args.images or write_crops(tmp / "images", 64, 256, seed=1)
        calibrate = args.calibrate or write_crops(tmp / "calibrate", 64, 256, seed=2)
        model = args.model or str(fresh_checkpoint(tmp / "fresh"))
        first = load_image(find_images(images)[0], 3)
        batch = np.stack([first] * args.batch_size)
        gpu = cuda_devices() > 0

        quiet = lambda line: print(f"  {line}", file=sys.stderr)  # noqa: E731
        onnx_fp32 = export(model, tmp / "g.onnx", log=quiet).path
        onnx_int8 = export(model, tmp / "g_int8.onnx", precision="int8", calibrate=calibrate, log=quiet).path
        backends: list[tuple[str, str, str, str]] = []  # (label, model, device, backend)
        if not args.skip_torch:
            backends.append(("PyTorch eager fp32, CPU", model, "cpu", "auto"))
        backends += [
            ("ONNX Runtime fp32, CPU", str(onnx_fp32), "cpu", "onnxruntime"),
            ("ONNX Runtime int8, CPU", str(onnx_int8), "cpu", "onnxruntime"),
        ]
        if openvino_installed():
            import openvino

            backends.append(("OpenVINO fp32, CPU", str(onnx_fp32), "cpu", "openvino"))
            if has_bf16(openvino.Core()):
                ir_bf16 = export(model, tmp / "g_bf16.xml", precision="bf16", file_format="openvino", log=quiet)
                backends.append(("OpenVINO bf16, CPU", str(ir_bf16.path), "cpu", "openvino"))
            else:
                print("  OpenVINO bf16: this CPU has no bf16 arithmetic; no row", file=sys.stderr)
            ir_int8 = export(
                model, tmp / "g_int8.xml", precision="int8", calibrate=calibrate, file_format="openvino", log=quiet
            )
            backends.append(("OpenVINO int8 (NNCF), CPU", str(ir_int8.path), "cpu", "openvino"))
        if gpu:
            onnx_fp16 = export(model, tmp / "g_fp16.onnx", precision="fp16", log=quiet).path
            if not args.skip_torch:
                backends.append(("PyTorch eager fp32, CUDA", model, "cuda", "auto"))
            backends += [
                ("ONNX Runtime fp32, CUDA", str(onnx_fp32), "cuda", "onnxruntime"),
                ("ONNX Runtime fp16, CUDA", str(onnx_fp16), "cuda", "onnxruntime"),
            ]

        rows, reference = [], None
        for label, source, device, backend in backends:
            translator = load_translator(source, "a2b", device, backend)
            row, out = measure(label, translator, images, tmp / f"out_{len(rows)}", batch, args.iters)
            result = outputs(out)
            if reference is None and "fp32" in label:
                reference = result
            row.ssim = ssim(result, reference) if reference is not None else None
            rows.append(row)
            print(f"  {label}: {1 / row.model_s:.2f} img/s model, {row.e2e_ips:.2f} img/s end to end", file=sys.stderr)

    count = len(find_images(images)) if args.images else 64
    print(
        f"\n{count} images at {first.shape[1]}×{first.shape[0]}, batch {args.batch_size}, "
        f"ORT intra-op threads {physical_cores()} (physical cores), "
        f"OMP_NUM_THREADS {os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"model {'fresh ResNet-9' if args.model is None else args.model}, {openvino_version()}\n"
    )
    base = next((r for r in rows if r.backend.startswith("ONNX Runtime fp32, CPU")), rows[0])
    header = (
        f"| {'backend':<26} | model s/img | model img/s | apply img/s | apply vs model | vs ORT fp32 | SSIM vs fp32 |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        overhead = (1 / r.e2e_ips) / r.model_s - 1
        speedup = base.model_s / r.model_s
        quality = f"{r.ssim:.4f}" if r.ssim is not None else "-"
        print(
            f"| {r.backend:<26} | {r.model_s:11.3f} | {1 / r.model_s:11.2f} | {r.e2e_ips:11.2f} | "
            f"{overhead:+13.1%} | {speedup:10.2f}× | {quality:>12} |"
        )

    goals(rows, base)


def openvino_version() -> str:
    """OpenVINO's version and the CPU's capabilities as it reports them (bf16, int8), for the table's caption."""
    if not openvino_installed():
        return "OpenVINO not installed"
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return f"OpenVINO {openvino.get_version().split('-')[0]} (CPU capabilities {', '.join(capabilities)})"


def goals(rows: list[Row], base: Row) -> None:
    """The OpenVINO backend's goals, as ratios within this run."""
    by_name = {r.backend: r for r in rows}
    print()
    fp32 = by_name.get("OpenVINO fp32, CPU")
    if fp32 is not None:
        ratio = base.model_s / fp32.model_s
        print(f"- OpenVINO fp32 / ONNX Runtime fp32, model time: {ratio:.2f}× (goal ≥ 1.2×)")
    cpu = [r for r in rows if r.backend.endswith("CPU") and r.ssim is not None and r.ssim >= MIN_SSIM]
    if cpu:
        fastest = max(cpu, key=lambda r: r.e2e_ips)
        overhead = (1 / fastest.e2e_ips) / fastest.model_s - 1
        print(
            f"- fastest CPU path with SSIM ≥ {MIN_SSIM}: {fastest.backend} (SSIM {fastest.ssim:.4f}), "
            f"{fastest.e2e_ips:.2f} images/s end to end = {fastest.e2e_ips / REFERENCE_IPS:.2f}× the original "
            f"code's {REFERENCE_IPS} (goal ≥ 3×); apply vs model {overhead:+.1%} (goal ≤ +10%)"
        )


if __name__ == "__main__":
    main()
