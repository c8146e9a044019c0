"""Smaller, faster generators: float16 conversion and static int8 quantisation of ONNX models, and int8 of
OpenVINO models through NNCF — **no torch**.

All take an exported fp32 model and keep its interface (float32 inputs and outputs, the same names), so the
backends run every variant unchanged.

* `to_float16` halves the file and suits GPUs. It is onnxconverter-common's converter, with one exception added
  for the CycleGAN generators: InstanceNormalization averages over H×W pixels, and a kernel that accumulates that
  variance in float16 overflows or loses its low bits on large images, so those nodes keep running in float32
  between Cast nodes. A few small passes around the converter fix what it gets wrong (see `to_float16`).
* `quantize_int8` is ONNX Runtime's static QDQ quantisation with the options measured to keep the output close
  to fp32 (see its docstring); it suits CPUs with 8-bit dot-product instructions (AVX512-VNNI, AVX-VNNI) and
  stays correct on those without (AVX2).
* `quantize_int8_openvino` is NNCF's post-training quantisation of an OpenVINO model, for the OpenVINO IR
  export; the same calibration feeds, and the same layers kept in float (see its docstring).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from translate.errors import QuantizationError
from translate.files import atomic_copy

if TYPE_CHECKING:
    import openvino as ov

__all__ = ["quantize_int8", "quantize_int8_openvino", "to_float16"]

_FLOAT = TensorProto.FLOAT
_HALF = TensorProto.FLOAT16


# ---------------------------------------------------------------------------------------------------- float16


def to_float16(model: onnx.ModelProto, keep_float32: tuple[str, ...] = ("InstanceNormalization",)) -> onnx.ModelProto:
    """A copy of `model` that computes in float16, except the `keep_float32` op types, which stay float32.

    onnxconverter-common converts the weights, constants and tensor types, and puts Casts around the nodes it
    keeps in float32: `keep_float32` and its default block list, which includes Resize and Upsample (their
    scales must stay float32) and ops with no float16 kernel. The graph's float inputs and outputs stay float32
    under their original names (`keep_io_types`), so callers feed and read the same arrays as before. Weights
    beyond ±65504 saturate at the float16 maximum instead of the converter's default ±10⁴. The IR version and
    opsets are the model's own.
    """
    source = onnx.ModelProto()
    source.CopyFrom(model)
    _prepare_for_float16(source.graph)
    float_outputs = {v.name for v in source.graph.output if v.type.tensor_type.elem_type == _FLOAT}
    kept = [*DEFAULT_OP_BLOCK_LIST, *keep_float32]
    with warnings.catch_warnings():
        # The converter warns for every tensor holding a value it clamps (any weight under 1e-7 in magnitude):
        # noise on a command line, and the clamping is what we ask for.
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        converted = convert_float_to_float16(
            source,
            keep_io_types=True,
            max_finite_val=float(np.finfo(np.float16).max),
            op_block_list=kept,
        )
    _retarget_float_casts(converted.graph)
    _restore_float32_outputs(converted.graph, float_outputs, set(kept))
    return converted


def _prepare_for_float16(graph: onnx.GraphProto) -> None:
    """Rewrite what onnxconverter-common (1.16) mishandles into forms it converts correctly; the model's meaning
    is unchanged."""
    # The exporter records the type of every initializer; the converter then marks the ones it keeps in float32
    # (a kept node's weights) float16 and casts them to float32 again. The initializer itself carries its type.
    initializers = {t.name for t in graph.initializer}
    value_info = [v for v in graph.value_info if v.name not in initializers]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    names = {node.name for node in graph.node}
    for index, node in enumerate(graph.node):
        # The converter names its Casts' outputs after the node they serve: unnamed nodes would share them.
        if not node.name:
            node.name = f"{node.op_type}_{index}"
            while node.name in names:
                node.name += "_"
            names.add(node.name)
        # It converts tensor-valued attributes only: a float Constant given as value_float(s), or a ConstantOfShape
        # left to its default float32 zero, would stay float32 among float16 tensors.
        scalar = next((a for a in node.attribute if a.name in ("value_float", "value_floats")), None)
        if node.op_type == "Constant" and scalar is not None:
            value = np.asarray(helper.get_attribute_value(scalar), dtype=np.float32)
            node.attribute.remove(scalar)
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value)))
        elif node.op_type == "ConstantOfShape" and not node.attribute:
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float32))))


def _retarget_float_casts(graph: onnx.GraphProto) -> None:
    """A Cast to float32 in the model now casts to float16: the converter records its output as float16 but
    leaves its `to` attribute at float32, which ONNX Runtime rejects (onnxconverter-common issue 320)."""
    half = {v.name for v in graph.value_info if v.type.tensor_type.elem_type == _HALF}
    for node in graph.node:
        if node.op_type == "Cast" and node.output[0] in half:
            to = next(a for a in node.attribute if a.name == "to")
            if to.i == _FLOAT:
                to.i = _HALF


def _restore_float32_outputs(graph: onnx.GraphProto, names: set[str], kept: set[str]) -> None:
    """Graph outputs `names` float32 again where a node of a `kept` op type writes them.

    The converter's Cast to float16 after a kept node takes the output's name and turns the graph output float16,
    despite `keep_io_types`. The output gets the kept node's float32 result back, and the Cast a name of its own
    for the float16 readers. Kept readers got no Cast to float32 (the converter finds no type for a graph output)
    and read the float32 result too.
    """
    for output in graph.output:
        if output.name not in names or output.type.tensor_type.elem_type == _FLOAT:
            continue
        cast = next(node for node in graph.node if output.name in node.output)
        half, result = f"{output.name}__fp16", cast.input[0]
        cast.output[:] = [half]
        for node in graph.node:
            node.output[:] = [output.name if name == result else name for name in node.output]
            reads_half = node.op_type not in kept
            node.input[:] = [
                output.name if name == result else half if name == output.name and reads_half else name
                for name in node.input
            ]
        value_info = [v for v in graph.value_info if v.name != result]
        del graph.value_info[:]
        graph.value_info.extend(value_info)
        output.type.tensor_type.elem_type = _FLOAT


# ------------------------------------------------------------------------------------------------------- int8


class _Feeds:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds.

    `set_range` lets quantize_static calibrate one feed at a time (its CalibStridedMinMax option): otherwise it
    keeps every intermediate activation of every feed in memory at once, gigabytes for a 9-block ResNet at 256 px.
    """

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self.set_range(0, len(feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iterator, None)

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iterator: Iterator[dict[str, np.ndarray]] = iter(self.feeds[start_index:end_index])


def quantize_int8(
    model_path: Path,
    out_path: Path,
    calibration: Iterable[dict[str, np.ndarray]],
    *,
    per_channel: bool = True,
) -> None:
    """Write a static int8 (QDQ) quantisation of the fp32 model at `model_path` to `out_path`, atomically.

    `calibration` yields input feeds ({"image": ...} for translators, {"z": ..., "label": ...} for generators)
    whose activation ranges set the quantisation scales; a few dozen typical inputs are enough. Activations are
    uint8 and weights int8 (per output channel unless `per_channel` is False), the combination x86 CPUs with
    VNNI run fastest; the weights use 7 of the 8 bits, so that CPUs without VNNI compute them exactly too.

    Choices, measured on a CycleGAN ResNet generator (photos at 256 px, SSIM of the int8 output against fp32):

    * activation ranges come from the 99.99th percentile of calibration values, not min/max (SSIM 0.934 ->
      0.973): a few outliers otherwise stretch the 256 levels, and instance norm amplifies the coarse steps;
    * the output layer (the last convolution, before Tanh) stays float (-> 0.980): it maps features straight
      to pixels, where rounding shows;
    * ConvTranspose stays float: ONNX Runtime's CPU provider has no int8 kernel for it, so quantising it only
      adds rounding and dequantisation work (a DCGAN generator ran 40% slower for it).

    Raises:
        QuantizationError: `calibration` yielded no feeds.
    """
    # Imported here: onnxruntime.quantization is slow to import and only this function needs it.
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = [{name: np.ascontiguousarray(value) for name, value in feed.items()} for feed in calibration]
    if not feeds:
        raise QuantizationError("int8 quantisation needs calibration inputs, and none were given")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="translate-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "int8.onnx"
        # Folds constants and records shapes so every Conv is recognised (symbolic shape inference is skipped:
        # it targets transformers and trips over the exporter's "4*h" dimensions).
        quant_pre_process(model_path, prepared, skip_symbolic_shape=True)
        # The calibrator prints progress to stdout, and the quantiser logs a warning for every rank-1 weight (a
        # bias, quantised per tensor as it should be): neither is for a command line's output.
        with contextlib.redirect_stdout(io.StringIO()), _quiet_logging():
            quantize_static(
                prepared,
                quantized,
                _Feeds(feeds),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                # Weights in [-64, 64], not [-127, 127]. Without VNNI (AVX2 only: AMD Zen 2 and 3, Intel desktop
                # CPUs before 2021) ONNX Runtime's uint8 x int8 kernels use VPMADDUBSW, which sums two products in
                # a saturating int16: 255 * 127 * 2 overflows it and corrupts whole feature maps (SSIM 0.68-0.81
                # on the tests' generators, against 0.99 for the same model computed exactly, as VNNI does).
                # 255 * 64 * 2 fits; VNNI CPUs run the same kernel as before, and 7-bit weights cost < 0.002 SSIM.
                # The option exists in every onnxruntime pyproject allows.
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
                nodes_to_exclude=_float_nodes(onnx.load(prepared, load_external_data=False)),
                extra_options={
                    "CalibPercentile": 99.99,
                    # One feed per calibration pass: otherwise every activation of every feed is held at
                    # once. (CalibMaxIntermediateOutputs would too, but in onnxruntime 1.31 MinMax drops data.)
                    "CalibStridedMinMax": 1,
                },
            )
        atomic_copy(quantized, out_path)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


_LAYERS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def _float_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes to leave unquantised: every ConvTranspose, and the layers that produce the graph's outputs."""
    producers = {name: node for node in model.graph.node for name in node.output}
    names = [node.name for node in model.graph.node if node.op_type == "ConvTranspose"]
    for output in model.graph.output:
        node = producers.get(output.name)
        for _ in range(4):  # walk back through activations, e.g. Conv -> Tanh -> output
            if node is None or node.op_type in _LAYERS:
                break
            node = producers.get(node.input[0]) if node.input else None
        if node is not None and node.op_type in _LAYERS and node.name not in names:
            names.append(node.name)
    return names


def quantize_int8_openvino(model: ov.Model, calibration: Iterable[dict[str, np.ndarray]]) -> ov.Model:
    """NNCF's static int8 quantisation of an OpenVINO model (a new model; `model` is left as it is).

    `calibration` yields input feeds, as for `quantize_int8`. NNCF inserts FakeQuantize nodes that OpenVINO's
    CPU plugin runs as int8 kernels: weights symmetric per output channel, activations per tensor. As in
    `quantize_int8`, the layers that produce the graph's outputs stay float (rounding shows in pixels there), and
    every layer's weights use 7 of the 8 bits (NNCF's overflow fix, on all layers rather than its default first
    one only): CPUs without VNNI sum pairs of uint8 × int8 products in saturating 16-bit integers.

    Raises:
        QuantizationError: `calibration` yielded no feeds.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    feeds = [{name: np.ascontiguousarray(value) for name, value in feed.items()} for feed in calibration]
    if not feeds:
        raise QuantizationError("int8 quantisation needs calibration inputs, and none were given")
    # NNCF reports progress with bars and INFO lines on the console: not for a command line's output.
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return nncf.quantize(
            model,
            nncf.Dataset(feeds),
            subset_size=len(feeds),
            ignored_scope=nncf.IgnoredScope(names=_openvino_output_layers(model)),
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE),
        )


_OPENVINO_LAYERS = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"})


def _openvino_output_layers(model: ov.Model) -> list[str]:
    """Names of the layers that produce the model's outputs, found back through activations and bias adds."""
    names = []
    for result in model.get_results():
        node = result.input_value(0).get_node()
        for _ in range(4):  # e.g. Convolution -> Add (bias) -> Tanh -> Result
            if node.get_type_name() in _OPENVINO_LAYERS or node.get_input_size() == 0:
                break
            node = node.input_value(0).get_node()
        if node.get_type_name() in _OPENVINO_LAYERS and node.get_friendly_name() not in names:
            names.append(node.get_friendly_name())
    return names
