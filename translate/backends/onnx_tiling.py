"""The ONNX Runtime side of tiled translation (`translate.backends.tiles`): graph surgery at load time — **no torch**.

Two graphs are derived from an exported translator (any precision) with the onnx package; the file itself and
its parity checks stay as they are:

* the **statistics graph** has the i-th InstanceNormalization node (in graph order) written out as its
  definition, mean and variance by ReduceMean over H and W, and outputs those, `stats_mean_i` and `stats_var_i`
  ((N, C, 1, 1): per channel, the variance biased, as the node computes them). The network's own output is
  dropped, and with it what follows the last instance norm.
* the **tile graph** has every InstanceNormalization(x, scale, B) replaced by BatchNormalization(x, scale, B,
  stats_mean_i, stats_var_i) in inference mode, (x − mean) / sqrt(var + ε) · scale + B with the node's own ε,
  the statistics (C,) becoming graph inputs.

fp16 exports keep instance norm in float32 (`quantize.to_float16`) and int8 exports are QDQ graphs whose instance
norms see dequantised float32 tensors, so the statistics are float32 everywhere. A graph without instance norms
(pix2pix: its batch norms are folded into the convolutions) runs as exported. The receptive field is read off its
Pad, Conv and ConvTranspose nodes in graph order (`tiles.receptive_margin`).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from translate.backends.tiles import SpatialLayer, Stats, receptive_margin
from translate.errors import OnnxModelError

if TYPE_CHECKING:
    import onnxruntime

NORM = "InstanceNormalization"
# Ops that move pixels in ways receptive_margin does not follow; the exported generators have none of them.
UNSUPPORTED = frozenset({"MaxPool", "AveragePool", "LpPool", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth"})
MIN_OPSET = 18  # ReduceMean takes its axes as an input from opset 18; exports are never older


class OnnxTiling:
    """An exported translator as a `tiles.TileBackend`: its statistics graph, its tile graph and its margin."""

    def __init__(
        self,
        path: Path,
        session: Callable[[onnx.ModelProto], onnxruntime.InferenceSession],
        plain: onnxruntime.InferenceSession,
    ) -> None:
        """`session` makes an ONNX Runtime session from a graph (the translator's device and settings); `plain`
        is the translator's session of the file as exported, reused when there are no instance norms."""
        import onnxruntime as ort

        model = onnx.load(path)
        self.margin = _margin(model, path)
        self.norms = sum(node.op_type == NORM for node in model.graph.node)
        self._statistics = session(statistics_graph(model, path)) if self.norms else None
        self._tiles = session(tile_graph(model)) if self.norms else plain
        del model
        _return_freed_heap()
        # A session's memory arena keeps what its largest run needed. Shrunk after every run, the statistics pass
        # hands its memory back before the tiles run (otherwise both peaks add up: 2.5 instead of 1.3 GB for a
        # ResNet-9 at 768 px tiles).
        self._options = ort.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def statistics(self, image: np.ndarray) -> Stats:
        if self._statistics is None:
            return []
        names = [f"stats_{kind}_{i}" for i in range(self.norms) for kind in ("mean", "var")]
        values = self._run(self._statistics, names, {"image": image})
        return [(values[i].reshape(-1), values[i + 1].reshape(-1)) for i in range(0, len(values), 2)]

    def __call__(self, batch: np.ndarray, stats: Stats) -> np.ndarray:
        feeds = {"image": batch}
        for i, (mean, var) in enumerate(stats):
            feeds[f"stats_mean_{i}"], feeds[f"stats_var_{i}"] = mean, var
        return self._run(self._tiles, ["output"], feeds)[0]

    def _run(self, session: onnxruntime.InferenceSession, names: list[str], feeds: dict[str, np.ndarray]) -> list:
        try:
            return session.run(names, feeds, self._options)
        except Exception as exc:  # ORT's errors are plain Exceptions; as RuntimeError, one image fails, not the run
            raise RuntimeError(str(exc).splitlines()[0]) from None


def _return_freed_heap() -> None:
    """Give the OS back the heap that graph surgery and session creation freed. glibc keeps it (about 200 MB for
    a ResNet-9), while the tiles' memory is mapped anew, on top of it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def statistics_graph(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """The graph whose outputs are every instance norm's input statistics (see the module docstring)."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise OnnxModelError(f"{path}: opset {opset} is too old to tile; export it again with `translate export`")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    del graph.output[:]
    constants = {"stats_axes": np.array([2, 3], np.int64), "stats_channels": np.array([1, -1, 1, 1], np.int64)}
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        if node.op_type != NORM:
            graph.node.append(node)
            continue
        # The norm written out, its statistics on the way. Extra outputs that only read the norm's input would
        # be run late by ONNX Runtime's default order, keeping every norm's input alive through the whole network
        # (2.0 instead of 1.3 KB per pixel for a ResNet-9).
        i = sum(value.name.startswith("stats_mean_") for value in graph.output)
        epsilon = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
        graph.initializer.append(numpy_helper.from_array(np.array(epsilon, np.float32), f"stats_epsilon_{i}"))
        (x, scale, bias), (y,) = node.input, node.output
        mean, var, t = f"stats_mean_{i}", f"stats_var_{i}", f"stats_{i}_"
        steps = [
            ("ReduceMean", [x, "stats_axes"], mean),  # (N, C, 1, 1)
            ("Sub", [x, mean], t + "centred"),
            ("Mul", [t + "centred", t + "centred"], t + "squared"),
            ("ReduceMean", [t + "squared", "stats_axes"], var),
            ("Add", [var, f"stats_epsilon_{i}"], t + "var_eps"),
            ("Sqrt", [t + "var_eps"], t + "std"),
            ("Div", [t + "centred", t + "std"], t + "normed"),
            ("Reshape", [scale, "stats_channels"], t + "scale"),  # (C,) → (1, C, 1, 1)
            ("Reshape", [bias, "stats_channels"], t + "bias"),
            ("Mul", [t + "normed", t + "scale"], t + "scaled"),
            ("Add", [t + "scaled", t + "bias"], y),
        ]
        for op, inputs, output in steps:
            graph.node.append(helper.make_node(op, inputs, [output], name=f"{output}_node"))
        graph.output.extend([helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in (mean, var)])
    _prune(graph)
    return out


def tile_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with every instance norm run on given statistics (see the module docstring)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    channels = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    norms = [node for node in graph.node if node.op_type == NORM]
    for i, node in enumerate(norms):
        epsilon = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
        mean, var = f"stats_mean_{i}", f"stats_var_{i}"
        node.op_type = "BatchNormalization"
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("epsilon", epsilon))
        node.input.extend([mean, var])
        shape = channels.get(node.input[1])  # the scale's (C,), when it is an initializer
        graph.input.extend([helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in (mean, var)])
    return out


def _prune(graph: onnx.GraphProto) -> None:
    """Drop the nodes and initializers no graph output needs (in the statistics graph: what follows the last
    instance norm)."""
    needed = {value.name for value in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _margin(model: onnx.ModelProto, path: Path) -> int:
    """The receptive-field margin, px, from the Pad, Conv and ConvTranspose nodes in graph (execution) order."""
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    rows: list[SpatialLayer] = []
    cols: list[SpatialLayer] = []
    for node in model.graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in UNSUPPORTED or attributes.get("auto_pad", b"NOTSET") != b"NOTSET":
            raise OnnxModelError(f"{path}: its {node.op_type} node cannot be tiled (try --tile 0)")
        if node.op_type in ("Conv", "ConvTranspose"):
            kind = "conv" if node.op_type == "Conv" else "transposed"
            kernel, pads = attributes["kernel_shape"], attributes.get("pads", [0] * 4)
            strides, dilations = attributes.get("strides", [1, 1]), attributes.get("dilations", [1, 1])
            for axis, layers in enumerate((rows, cols)):
                layers.append(SpatialLayer(kind, kernel[axis], strides[axis], dilations[axis], pads[axis]))
        elif node.op_type == "Pad":
            if (len(node.input) > 3 and node.input[3]) or node.input[1] not in constants:
                raise OnnxModelError(f"{path}: a Pad node whose pads are not constants cannot be tiled (try --tile 0)")
            pads = constants[node.input[1]]  # (N, C, H, W) begins, then ends
            rows.append(SpatialLayer("pad", pad=int(pads[2])))
            cols.append(SpatialLayer("pad", pad=int(pads[3])))
    return max(receptive_margin(rows), receptive_margin(cols))
