"""`translate.export`: a checkpoint to ONNX or OpenVINO IR, checked against PyTorch, as `translate export` does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from translate.deploy.export import ExportResult


def export(
    model: str | Path,
    out: str | Path | None = None,
    *,
    direction: str | None = None,
    precision: str = "fp32",
    format: str = "onnx",
    opset: int = 18,
    calibrate: str | Path | None = None,
    overwrite: bool = False,
    resolution: int | None = None,
    log: Callable[[str], None] | None = None,
    status: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a trained generator to a file that runs without PyTorch, after checking it against PyTorch.

    Args:
        model: a run folder, a `.safetensors` checkpoint, or a shipped or official model's name.
        out: the `.onnx` (or, with format "openvino", `.xml`) file; default `NAME[_DIRECTION][_PRECISION]` in the
            current folder.
        direction: translators: which generator ("a2b" by default).
        precision: "fp32"; "fp16" (ONNX, GPUs); "int8" (static quantisation, CPUs with VNNI); "bf16" (OpenVINO).
        format: "onnx", or "openvino" for an OpenVINO IR (.xml + .bin).
        calibrate: int8 translators: a folder of typical input images for calibration.
        resolution: progan: the generator at an earlier resolution, px.
        log: gets the lines worth keeping (what was exported, each parity check's figures); default: none.
        status: gets the stage under way (for a spinner).

    Returns:
        an `ExportResult`: path, precision, opset, bytes and the parity checks' lines.

    Examples:
        >>> result = translate.export("runs/digits", "digits.onnx")
        >>> g = translate.load(result.path, backend="onnxruntime")
    """
    from translate.deploy.export import export as run_export

    return run_export(
        str(model),
        None if out is None else Path(out),
        direction=direction,
        opset=opset,
        precision=precision,
        calibrate=None if calibrate is None else Path(calibrate),
        overwrite=overwrite,
        log=log or (lambda line: None),
        status=status or (lambda stage: None),
        file_format=format,
        resolution=resolution,
    )
