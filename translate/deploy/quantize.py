"""Smaller, faster ONNX generators: float16 conversion and static int8 quantisation — **no torch**.

Both take an exported fp32 model and keep its interface (float32 inputs and outputs, the same names), so the
ONNX Runtime backend runs any of the three variants unchanged.

* `to_float16` halves the file and suits GPUs. It is written here, in a page of code, because the CycleGAN
  generators need one exception: InstanceNormalization averages over H×W pixels, and a kernel that accumulates
  that variance in float16 overflows or loses its low bits on large images, so those nodes keep running in
  float32 between Cast nodes.
* `quantize_int8` is ONNX Runtime's static QDQ quantisation with the options measured to keep the output close
  to fp32 (see its docstring); it suits CPUs with 8-bit dot-product instructions (AVX512-VNNI, AVX-VNNI).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from translate.errors import QuantizationError
from translate.files import atomic_copy

__all__ = ["quantize_int8", "to_float16"]

_FLOAT = TensorProto.FLOAT
_HALF = TensorProto.FLOAT16

# Float inputs whose type ONNX fixes to float32 whatever the data type: converting them breaks the model.
_ALWAYS_FLOAT32_INPUTS: dict[str, frozenset[int]] = {"Resize": frozenset({2}), "Upsample": frozenset({1})}


# ---------------------------------------------------------------------------------------------------- float16


def _to_half_tensor(tensor: TensorProto) -> TensorProto:
    """A float32 TensorProto as float16 with the same name; values beyond ±65504 saturate instead of turning inf."""
    values = numpy_helper.to_array(tensor)
    limit = np.finfo(np.float16).max
    return numpy_helper.from_array(np.clip(values, -limit, limit).astype(np.float16), tensor.name)


def _float_tensor_names(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor in the main graph, intermediate ones found by ONNX type inference."""
    graph = onnx.shape_inference.infer_shapes(model).graph
    names = {t.name for t in graph.initializer if t.data_type == _FLOAT}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == _FLOAT:
            names.add(value.name)
    return names


def to_float16(model: onnx.ModelProto, keep_float32: tuple[str, ...] = ("InstanceNormalization",)) -> onnx.ModelProto:
    """A copy of `model` that computes in float16, except the `keep_float32` op types, which stay float32.

    Float32 initializers and Constant tensors become float16 unless only `keep_float32` nodes read them. A Cast
    converts each float input of a kept node to float32 and its outputs back to float16. The graph's float inputs
    and outputs stay float32 under their original names (a Cast after each input, before each output), so callers
    feed and read the same arrays as before. Integer tensors (pads, indices, shapes) are untouched, and the IR
    version is kept (a newer onnx would otherwise write one older runtimes refuse). Only the main graph is
    converted; subgraphs of control-flow nodes are left as they are.
    """
    floats = _float_tensor_names(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep = frozenset(keep_float32)

    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))

    def wants_float32(node: onnx.NodeProto, index: int) -> bool:
        return node.op_type in keep or index in _ALWAYS_FLOAT32_INPUTS.get(node.op_type, ())

    def read_only_as_float32(name: str) -> bool:
        return all(wants_float32(node, i) for node, i in consumers.get(name, []))

    # Each float tensor is produced either in float32 (graph inputs, outputs of kept nodes, constants only kept
    # nodes read) or in float16 (everything else); readers that want the other type get a shared Cast.
    native32: set[str] = {v.name for v in graph.input if v.name in floats}
    for tensor in graph.initializer:
        if tensor.data_type == _FLOAT:
            if read_only_as_float32(tensor.name):
                native32.add(tensor.name)
            else:
                tensor.CopyFrom(_to_half_tensor(tensor))
    graph_outputs = [v.name for v in graph.output if v.name in floats]
    renamed: dict[str, str] = {}  # graph outputs produced in float16 under an internal name
    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}  # (tensor, target type) -> name of its Cast's output

    def cast(name: str, to: int) -> str:
        """`name` converted to type `to`, adding the Cast just before its first reader (so after its producer)."""
        if (name, to) not in casts:
            target = f"{name}__{'fp32' if to == _FLOAT else 'fp16'}"
            nodes.append(helper.make_node("Cast", [renamed.get(name, name)], [target], name=f"{target}__cast", to=to))
            casts[name, to] = target
        return casts[name, to]

    for node in list(graph.node):
        if node.op_type in ("Constant", "ConstantOfShape") and node.output[0] in floats:
            if node.op_type == "Constant" and read_only_as_float32(node.output[0]):
                native32.add(node.output[0])
            else:
                _value_to_half(node)
        elif node.op_type == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            if to.i == _FLOAT and not (node.output[0] in graph_outputs or read_only_as_float32(node.output[0])):
                to.i = _HALF  # an internal Cast to float now casts to the compute type
            elif to.i == _FLOAT:
                native32.add(node.output[0])
        for i, name in enumerate(node.input):
            if name in floats:
                want = _FLOAT if wants_float32(node, i) else _HALF
                have = _FLOAT if name in native32 else _HALF
                node.input[i] = renamed.get(name, name) if want == have else cast(name, want)
        for i, name in enumerate(node.output):
            if name in floats and node.op_type in keep:
                native32.add(name)
            elif name in graph_outputs and name not in native32:
                node.output[i] = renamed[name] = f"{name}__fp16"
        nodes.append(node)

    for name in graph_outputs:
        if name in renamed:
            nodes.append(helper.make_node("Cast", [renamed[name]], [name], name=f"{name}__cast", to=_FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    # Types recorded for converted tensors are stale; the runtime re-infers them.
    kept_info = [v for v in graph.value_info if v.name not in floats]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return out


def _value_to_half(node: onnx.NodeProto) -> None:
    """Rewrite the float value of a Constant (tensor, value_float, value_floats) or ConstantOfShape as float16."""
    attribute = next((a for a in node.attribute if a.name.startswith("value")), None)
    if attribute is None:  # ConstantOfShape without a value: float32 zeros
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))
        return
    if attribute.name == "value":
        tensor = _to_half_tensor(attribute.t)
    else:
        value = np.asarray(helper.get_attribute_value(attribute), dtype=np.float32)
        tensor = _to_half_tensor(numpy_helper.from_array(value))
    node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute("value", tensor))


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
    VNNI run fastest.

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
