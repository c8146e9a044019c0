"""Export a trained generator to ONNX: dynamic shapes, metadata inside the file, and a parity check every time.

Translators take `image` float32 (N, C, H, W) with N, H and W dynamic (H and W multiples of the network's stride;
`translate apply` pads and crops around that) and return `output`. Generators take their declared inputs by name
(`ModelDescription.inputs`: `z` float32 (N, latent_dim), plus `label` int64 (N,) when class-conditional, or
InfoGAN's codes, `cat` int64 (N,) and `c1`, `c2`, ... float32 (N,)), each with a dynamic batch axis, and return
`image`. Values are in [-1, 1] on both sides. The model description is
written into the file's `metadata_props`.

A class input's graph is the network fed by an `embedding` tensor, with a Gather from the initializer
`class_embedding` prepended: the label selects a row, and the tensor `embedding` stays addressable, so the ONNX
Runtime backend can cut the graph there and walk between classes exactly as PyTorch does.

Every export is checked before it is written: ONNX Runtime against PyTorch on random inputs at two sizes for
fp32 (max abs difference), and the fp16 or int8 model against the fp32 one (PSNR and SSIM). A failed check
writes nothing and raises ExportError.

`--format openvino` writes OpenVINO IR (`.xml` and `.bin`) from the same checked ONNX graph, with the same
description in its rt_info: fp32, bf16 (computed in bf16 on CPUs that have it; the file keeps fp32 weights) or
int8 (NNCF, on the same calibration feeds). OpenVINO's fp32 is checked against PyTorch with the same tolerance,
and bf16 and int8 against OpenVINO's fp32 with the same PSNR/SSIM check and limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from translate import __version__
from translate.backends import export_formats, get_export
from translate.backends.onnxruntime import create_session
from translate.core import checkpoint
from translate.deploy.inference import MIN_SIDE
from translate.deploy.metrics import psnr, ssim
from translate.deploy.models import check_official_direction, resolve_checkpoint, shipped_models
from translate.deploy.sampling import random_feeds
from translate.description import ModelDescription
from translate.errors import ExportError, ImageDecodeError, UsageError
from translate.files import atomic_copy, sha256_file
from translate.imageio import find_images, load_image, resize, to_float
from translate.recipes import recipe_of
from translate.recipes.restore import load_generator

DEFAULT_OPSET = 18  # the dynamo exporter's own minimum for Pad and friends; a lower request is raised to it
FP32_TOLERANCE = 1e-4  # max abs difference between a runtime (ORT, OpenVINO) and PyTorch, on outputs in [-1, 1]
# Lowest SSIM against the fp32 model that a reduced-precision export may have (fp16 is near-lossless; int8
# trades a little fidelity for speed, and below this it visibly changes pictures).
# bf16 (OpenVINO) is a float format of fewer bits, like fp16, and is held to fp16's limit.
MIN_SSIM = {"fp16": 0.99, "bf16": 0.99, "int8": 0.95}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # every precision some export format takes (ExportSpec.precisions)
CALIBRATION_IMAGES = 32  # calibrate int8 activation ranges on this many images (more adds time, little accuracy)
EVALUATION_IMAGES = 8  # images (held out from calibration when there are enough) for the int8/fp16 check


@dataclass
class ExportResult:
    path: Path
    precision: str
    opset: int
    bytes: int
    checks: list[str] = field(default_factory=list)  # one line per parity check, as printed


def export(
    model: str,
    out: Path | None = None,
    *,
    direction: str | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    calibrate: Path | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    status: Callable[[str], None] = lambda stage: None,
    file_format: str = "onnx",
    resolution: int | None = None,
) -> ExportResult:
    """Export MODEL (run folder, checkpoint or shipped name) to an .onnx file that needs nothing beside it, or
    with `file_format` "openvino" to an OpenVINO IR (.xml and the .bin beside it).

    `log` gets the lines to keep (what is exported, each check's figures); `status` gets the stage under way, for a
    spinner: an export takes 10-30 s, most of it in the exporter and the checks. `resolution`: a progressively
    grown generator at an earlier resolution than its final one.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    _check_format(file_format, precision)
    source = resolve_checkpoint(model)
    spec = recipe_of(checkpoint.read(source))
    generator = spec.is_generator
    direction = direction or spec.default_direction
    if generator and calibrate is not None:
        raise UsageError("--calibrate is for translators; generators calibrate int8 on random latents")
    if precision == "int8" and generator and file_format == "onnx":
        log(
            "note: generators are mostly transposed convolutions, which ONNX Runtime's CPU kernels run in float; "
            "expect a smaller file rather than more speed"
        )
    if precision == "int8" and not generator and calibrate is None:
        raise UsageError("--int8 needs --calibrate DIR: a folder of typical input images (a few dozen is enough)")
    suffix = get_export(file_format).suffix
    target = out or Path(_default_name(model, source, None if generator else direction, precision, suffix, resolution))
    if target.suffix.lower() != suffix:
        raise UsageError(f"--out {target}: the file name must end in {suffix}")
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists; pass --overwrite to replace it")

    status(f"loading {source}")
    if direction == "b2a":
        check_official_direction(source)
    # Eval mode: dropout off, batch norm on running statistics.
    module, description = load_generator(source, direction, resolution)
    module = module.float().eval()
    if calibrate is not None:
        status(f"reading calibration images from {calibrate}")
    calibration = _calibration_images(calibrate, description.channels) if calibrate is not None else []
    what = spec.name if generator else f"{spec.name} {direction}"
    log(f"exporting {what} ({description.origin}) from {source} to {precision} {get_export(file_format).title} ...")
    if calibration:
        calibration = _crop_squares(calibration, description.image_size, description.stride)
    status(f"exporting {what} to ONNX (torch.onnx, dynamo)")
    proto, inputs = _to_onnx(module, description, opset)
    actual_opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if actual_opset != opset:
        log(f"note: the exporter wrote opset {actual_opset} (asked for {opset}); the file records {actual_opset}")
    # The target precision goes in from the start: the fp16/int8 conversions carry the metadata over.
    description = dataclasses.replace(
        description,
        precision=precision,
        opset=actual_opset,
        source_sha256=sha256_file(source),
        translate_version=__version__,
    )
    _set_metadata(proto, description)
    onnx.checker.check_model(proto)

    result = ExportResult(path=target, precision=precision, opset=actual_opset, bytes=0)
    status("checking ONNX Runtime against PyTorch")
    _check_fp32(_run(proto, inputs), module, inputs, result.checks)
    log(result.checks[-1])
    with tempfile.TemporaryDirectory(prefix="translate-export-") as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        onnx.save(proto, fp32_path)
        if file_format == "openvino":
            args = (fp32_path, target, description, module, inputs, calibration, result.checks)
            result.bytes = _write_openvino(*args, log=log, status=status)
            return result
        final = fp32_path
        if precision != "fp32":
            final = Path(tmp) / f"{precision}.onnx"
            feeds = _evaluation_feeds(description, calibration, inputs)
            status("converting to fp16" if precision == "fp16" else _calibrating(description, calibration))
            _reduce_precision(fp32_path, final, precision, description, calibration)
            status(f"checking {precision} against fp32")
            _check_reduced(_run(final, feeds), _run(fp32_path, feeds), precision, feeds, result.checks)
            log(result.checks[-1])
        atomic_copy(final, target)
    result.bytes = target.stat().st_size
    return result


# ----------------------------------------------------------------------------------------- export itself


class _ByName(nn.Module):
    """The generator called with its inputs by name; a class input is replaced by its `embedding` (the label lookup
    is prepended to the graph afterwards). The exporter gets them as keyword arguments, so its graph's placeholders
    carry the input names from the start and its own value names steer clear of them (given positionally and
    renamed afterwards, an input `cat` collided with the value of the generator's `torch.cat`)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.generator(**inputs)


def _to_onnx(
    module: nn.Module, model: ModelDescription, opset: int
) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]]]:
    """The fp32 ONNX model and the parity inputs: batches of different size (and, for images, shape)."""
    rng = np.random.default_rng(0)
    batch = torch.export.Dim("batch", min=1, max=4096)
    if not model.is_generator:
        stride, channels = model.stride, model.channels
        # A small example whose deepest feature map is not 1×1 (export would fix a size-1 axis as a constant);
        # the exported graph takes any multiple of stride.
        side = stride * max(2, math.ceil(64 / stride))
        height = torch.export.Dim("height", min=1, max=16384 // stride)
        width = torch.export.Dim("width", min=1, max=16384 // stride)
        example = (torch.from_numpy(rng.uniform(-1, 1, (2, channels, side, side)).astype(np.float32)),)
        shapes = ({0: batch, 2: stride * height, 3: stride * width},)
        proto = _dynamo_export(module, example, shapes, ["image"], ["output"], opset)
        tall = stride * math.ceil(side * 1.5 / stride)
        smallest = max(MIN_SIDE, stride)  # what inference pads tiny images up to (a U-Net bottleneck is then 1×1)
        checks = [
            {"image": rng.uniform(-1, 1, (2, channels, side, side)).astype(np.float32)},
            {"image": rng.uniform(-1, 1, (3, channels, tall, 2 * side)).astype(np.float32)},
            {"image": rng.uniform(-1, 1, (1, channels, smallest, smallest)).astype(np.float32)},
        ]
        return proto, checks

    # Examples of batch 2 (the exporter would fix a size-1 axis as a constant); a class input is fed as two rows
    # of its embedding table, the first and the last class.
    example_feeds = random_feeds(model, 2, rng)
    label = model.class_input
    table = None
    names = [item.name for item in model.inputs]
    values = [torch.from_numpy(example_feeds[name]) for name in names]
    if label is not None:
        with torch.inference_mode():
            table = module.embed(torch.arange(len(label.classes))).float().numpy()
        index = names.index(label.name)
        names[index] = "embedding"
        values[index] = torch.from_numpy(table[[0, len(label.classes) - 1]])
    shapes = {"inputs": {name: {0: batch} for name in names}}  # forward(**inputs): one entry holding every input
    example = dict(zip(names, values, strict=True))
    proto = _dynamo_export(_ByName(module), (), shapes, names, ["image"], opset, example)
    if label is not None and table is not None:
        _prepend_label_lookup(proto, table, label.name)
    return proto, [random_feeds(model, n, rng) for n in (2, 5)]


def _dynamo_export(
    module: nn.Module,
    example: tuple,
    shapes: tuple | dict,
    inputs: list[str],
    outputs: list[str],
    opset: int,
    named: dict[str, torch.Tensor] | None = None,
) -> onnx.ModelProto:
    # The exporter prints progress and raises warnings meant for its developers; a failure still raises.
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module,
                example,
                None,
                kwargs=named,
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=shapes,
                opset_version=opset,
                external_data=False,
                optimize=True,
                verbose=False,
            )
        except Exception as exc:
            raise ExportError(f"the ONNX exporter failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    proto = program.model_proto
    # The exporter annotates nodes and values with Python stack traces (absolute source paths) and FX names: debug
    # information for the exporter itself, which would leak paths into shared files and tie the bytes to line
    # numbers. Only the model-level metadata (set below) is kept.
    for item in (*proto.graph.node, *proto.graph.value_info, *proto.graph.input, *proto.graph.output):
        del item.metadata_props[:]
    for tensor in proto.graph.initializer:
        del tensor.metadata_props[:]
    del proto.graph.metadata_props[:]
    return proto


def _prepend_label_lookup(proto: onnx.ModelProto, table: np.ndarray, label: str) -> None:
    """Turn the `embedding` input into the output of Gather(class_embedding, label)."""
    graph = proto.graph
    embedding = next(value for value in graph.input if value.name == "embedding")
    batch_dim = embedding.type.tensor_type.shape.dim[0].dim_param or "batch"
    graph.value_info.append(embedding)  # keeps its type and shape, so the graph can be cut here again
    position = list(graph.input).index(embedding)
    graph.input.remove(embedding)
    graph.input.insert(position, helper.make_tensor_value_info(label, TensorProto.INT64, [batch_dim]))
    graph.initializer.append(numpy_helper.from_array(table.astype(np.float32), "class_embedding"))
    graph.node.insert(0, helper.make_node("Gather", ["class_embedding", label], ["embedding"], name="label_lookup"))


def _set_metadata(proto: onnx.ModelProto, model: ModelDescription) -> None:
    proto.producer_name, proto.producer_version = "translate", __version__
    del proto.metadata_props[:]
    for key, value in model.to_metadata().items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


# ----------------------------------------------------------------------------------------- parity checks


def _run(session_source: onnx.ModelProto | Path, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    source = session_source.SerializeToString() if isinstance(session_source, onnx.ModelProto) else session_source
    session, _ = create_session(source, "cpu")
    return [session.run(None, feed)[0] for feed in feeds]


def _check_fp32(
    ours: list[np.ndarray],
    module: nn.Module,
    inputs: list[dict[str, np.ndarray]],
    checks: list[str],
    runtime: str = "ONNX Runtime",
) -> None:
    """`runtime`'s outputs `ours` vs PyTorch on every input batch; raises ExportError beyond FP32_TOLERANCE."""
    diffs, shapes = [], []
    with torch.inference_mode():
        for feed, got in zip(inputs, ours, strict=True):
            if "image" in feed:
                expected = module(torch.from_numpy(feed["image"]))
            else:  # a generator, called with its inputs by name
                expected = module(**{name: torch.from_numpy(value) for name, value in feed.items()})
            expected = expected.float().numpy()
            if got.shape != expected.shape:
                raise ExportError(f"parity check failed: ONNX output {got.shape}, PyTorch {expected.shape}")
            diffs.append(float(np.abs(got - expected).max()))
            shapes.append("×".join(str(s) for s in next(iter(feed.values())).shape))
    line = f"parity fp32, {runtime} vs PyTorch: max |Δ| " + ", ".join(
        f"{d:.1e} at {s}" for d, s in zip(diffs, shapes, strict=True)
    )
    checks.append(f"{line} (limit {FP32_TOLERANCE:.0e})")
    if max(diffs) > FP32_TOLERANCE or not all(math.isfinite(d) for d in diffs):
        raise ExportError(f"{line}: above the limit {FP32_TOLERANCE:.0e}; nothing was written")


def _check_reduced(
    reduced: list[np.ndarray],
    full: list[np.ndarray],
    precision: str,
    feeds: list[dict[str, np.ndarray]],
    checks: list[str],
) -> None:
    """PSNR and SSIM of the reduced-precision model's outputs `reduced` against the fp32 model's `full` on the
    same inputs `feeds`; raises ExportError below MIN_SSIM."""
    # Batches may differ in image size: average per batch, weighted by its number of images.
    counts = np.array([len(batch) for batch in full], dtype=np.float64)
    quality_psnr = float(np.average([psnr(a, b) for a, b in zip(reduced, full, strict=True)], weights=counts))
    quality_ssim = float(np.average([ssim(a, b) for a, b in zip(reduced, full, strict=True)], weights=counts))
    what = "images" if "image" in feeds[0] else "latents"
    line = (
        f"parity {precision} vs fp32 on {int(counts.sum())} {what}: PSNR {quality_psnr:.1f} dB, "
        f"SSIM {quality_ssim:.4f} (limit {MIN_SSIM[precision]})"
    )
    checks.append(line)
    if not quality_ssim >= MIN_SSIM[precision]:
        raise ExportError(f"{line}: SSIM below the limit; nothing was written")


def _evaluation_feeds(
    model: ModelDescription, calibration: list[np.ndarray], inputs: list[dict]
) -> list[dict[str, np.ndarray]]:
    """Inputs for the reduced-precision check: held-out real images when given, else the fp32 check's inputs."""
    if model.is_generator:
        return [random_feeds(model, 32, np.random.default_rng(1))]  # not the calibration draws
    if not calibration:
        return inputs
    held_out = calibration[-EVALUATION_IMAGES:]
    return [{"image": image[None]} for image in held_out]


# ----------------------------------------------------------------------------------------- fp16 and int8


def _reduce_precision(
    fp32_path: Path, out: Path, precision: str, model: ModelDescription, calibration: list[np.ndarray]
) -> None:
    from translate.deploy.quantize import quantize_int8, to_float16

    if precision == "fp16":
        onnx.save(to_float16(onnx.load(fp32_path)), out)
    else:
        quantize_int8(fp32_path, out, _calibration_feeds(model, calibration))


# ----------------------------------------------------------------------------------------- OpenVINO IR


def _check_format(file_format: str, precision: str) -> None:
    """Refuse, before any work, a format without that precision, and bf16 on a CPU without bf16 arithmetic."""
    formats = export_formats()
    if file_format not in formats:
        raise UsageError(f"--format {file_format}: use one of {', '.join(formats)}")
    precisions = get_export(file_format).precisions
    if precision not in precisions:
        other = next(name for name in formats if precision in get_export(name).precisions)
        reduced = " or ".join(f"--{name}" for name in precisions[1:])
        raise UsageError(f"--{precision} is for --format {other}; --format {file_format} takes fp32, {reduced}")
    if file_format == "openvino":
        from translate.backends import openvino as openvino_runtime

        core = openvino_runtime.import_openvino().Core()
        if precision == "bf16" and not openvino_runtime.has_bf16(core):
            raise ExportError(
                "--bf16: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX), so it cannot be checked here; "
                "export it on a CPU that has it, or use --int8"
            )


def _write_openvino(
    onnx_path: Path,
    target: Path,
    model: ModelDescription,
    module: nn.Module,
    inputs: list[dict[str, np.ndarray]],
    calibration: list[np.ndarray],
    checks: list[str],
    *,
    log: Callable[[str], None],
    status: Callable[[str], None],
) -> int:
    """The checked fp32 ONNX model at `onnx_path` as an OpenVINO IR at `target` (checked again, at its
    precision); the bytes written."""
    from translate.backends import openvino as openvino_runtime
    from translate.deploy.quantize import quantize_int8_openvino

    graph = openvino_runtime.from_onnx(onnx_path, model)
    status("checking OpenVINO against PyTorch")
    _check_fp32(openvino_runtime.run_feeds(graph, "f32", inputs), module, inputs, checks, "OpenVINO")
    log(checks[-1])
    if model.precision != "fp32":
        feeds = _evaluation_feeds(model, calibration, inputs)
        full = openvino_runtime.run_feeds(graph, "f32", feeds)
        if model.precision == "bf16":
            reduced = openvino_runtime.run_feeds(graph, "bf16", feeds)
        else:
            status(_calibrating(model, calibration))
            graph = quantize_int8_openvino(graph, _calibration_feeds(model, calibration))
            reduced = openvino_runtime.run_feeds(graph, "f32", feeds)
        status(f"checking {model.precision} against fp32")
        _check_reduced(reduced, full, model.precision, feeds, checks)
        log(checks[-1])
    return openvino_runtime.save_ir(graph, target)


def _calibrating(model: ModelDescription, calibration: list[np.ndarray]) -> str:
    """What int8 calibration runs on, for the status line."""
    if model.is_generator:
        return "calibrating int8 activation ranges on random latents"
    return f"calibrating int8 activation ranges on {len(_calibration_set(calibration))} images"


def _calibration_set(calibration: list[np.ndarray]) -> list[np.ndarray]:
    """The images int8 calibration uses: the evaluation images are held out when there are enough for both."""
    return calibration[:-EVALUATION_IMAGES] if len(calibration) > 2 * EVALUATION_IMAGES else calibration


def _calibration_feeds(model: ModelDescription, calibration: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    if model.is_generator:
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield random_feeds(model, 16, rng)
        return
    for image in _calibration_set(calibration):
        yield {"image": image[None]}


def _calibration_images(folder: Path, channels: int) -> list[np.ndarray]:
    """Up to CALIBRATION_IMAGES + EVALUATION_IMAGES readable images from `folder`, uint8 (H, W, C)."""
    if not folder.is_dir():
        raise UsageError(f"--calibrate {folder}: no such folder; give a folder of typical input images")
    try:
        paths = find_images(folder)
    except (ValueError, OSError) as exc:
        raise ExportError(f"--calibrate {folder}: {exc}") from None
    if not paths:
        raise ExportError(f"--calibrate {folder}: no images found; give a folder of typical input images")
    images = []
    for path in paths:
        try:
            images.append(load_image(path, channels))
        except (ImageDecodeError, OSError):
            continue  # a corrupt calibration image is simply not used
        if len(images) == CALIBRATION_IMAGES + EVALUATION_IMAGES:
            break
    if not images:
        raise ExportError(f"--calibrate {folder}: none of the images could be read")
    return images


def _crop_squares(images: list[np.ndarray], side: int, stride: int) -> list[np.ndarray]:
    """Centre squares at the training size (rounded to the stride), float (C, S, S) in [-1, 1]: the inputs the
    network saw in training, so the calibrated activation ranges are the ones it meets."""
    side = max(stride, stride * round(side / stride))
    out = []
    for image in images:
        h, w = image.shape[:2]
        scale = side / min(h, w)
        image = resize(image, (max(side, round(w * scale)), max(side, round(h * scale))))
        h, w = image.shape[:2]
        top, left = (h - side) // 2, (w - side) // 2
        out.append(to_float(image[top : top + side, left : left + side]))
    return out


# ----------------------------------------------------------------------------------------- files


def _default_name(
    model: str,
    source: Path,
    direction: str | None,
    precision: str,
    suffix: str = ".onnx",
    resolution: int | None = None,
) -> str:
    if model in shipped_models():
        name = model
    elif source.parent.name == "checkpoints":  # a run folder's checkpoint: name it after the run
        name = source.parent.parent.name
    else:
        name = source.stem
    parts = [name] + ([direction] if direction else []) + ([f"{resolution}px"] if resolution else [])
    parts += [precision] if precision != "fp32" else []
    return "_".join(parts) + suffix
