"""OpenVINO's side of tiled translation (`translate.backends.tiles`): the two graphs of `onnx_tiling`, derived from
the model OpenVINO has read — **no torch**.

The ONNX graphs of `onnx_tiling` cannot serve an OpenVINO IR, so the same two graphs are derived here from the
`openvino.Model` (from an `.onnx` file or an IR alike), where OpenVINO's ONNX frontend has written each
InstanceNormalization as MVN over H and W followed by the affine Multiply and Add:

* the **statistics graph** outputs, for the i-th MVN (in topological order), the mean and biased variance of its
  input over H and W ((N, C, 1, 1) each); the network's own output is dropped.
* the **tile graph** replaces every MVN by (x − mean) / sqrt(var + ε) (ε inside the root, as the MVN of an
  instance norm has it) on statistics fed as inputs `stats_mean_i` and `stats_var_i`, (C,) each.

An int8 IR's MVNs read dequantised float tensors, so statistics are float32 there too. A graph without MVN
(pix2pix: batch norm folded into its convolutions) runs as it is. The receptive-field margin is read off the Pad
and (transposed) convolution nodes in topological order (`tiles.receptive_margin`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from translate.backends.tiles import SpatialLayer, Stats, receptive_margin
from translate.errors import OpenVinoModelError

if TYPE_CHECKING:
    import openvino as ov

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]  # feeds by name → outputs in the graph's order
CONVOLUTIONS = {
    "Convolution": "conv",
    "GroupConvolution": "conv",
    "ConvolutionBackpropData": "transposed",
    "GroupConvolutionBackpropData": "transposed",
}
# Ops that move pixels in ways receptive_margin does not follow; the exported generators have none of them.
UNSUPPORTED = frozenset({"MaxPool", "AvgPool", "Interpolate", "DepthToSpace", "SpaceToDepth", "DeformableConvolution"})


class OpenVinoTiling:
    """A model read by OpenVINO as a `tiles.TileBackend`: its statistics graph, its tile graph and its margin."""

    def __init__(self, model: ov.Model, path: Path, compiled: Callable[[ov.Model, str | None], Runner]) -> None:
        """`compiled(graph, hint)` runs a graph with the translator's settings, or another arithmetic `hint`."""
        self.margin = _margin(model, path)
        self.norms = len(_norms(model, path))
        # Statistics in f32 whatever the model's precision: they are a few numbers per channel, reduced over up to
        # a tile's worth of pixels, and every tile of the image is normalised with them.
        self._statistics = compiled(statistics_graph(model, path), "f32") if self.norms else None
        self._tiles = compiled(tile_graph(model, path) if self.norms else model, None)

    def statistics(self, image: np.ndarray) -> Stats:
        if self._statistics is None:
            return []
        values = self._statistics({"image": image})
        return [(values[i].reshape(-1), values[i + 1].reshape(-1)) for i in range(0, len(values), 2)]

    def __call__(self, batch: np.ndarray, stats: Stats) -> np.ndarray:
        feeds = {"image": batch}
        for i, (mean, var) in enumerate(stats):
            feeds[f"stats_mean_{i}"], feeds[f"stats_var_{i}"] = mean, var
        return self._tiles(feeds)[0]


def statistics_graph(model: ov.Model, path: Path) -> ov.Model:
    """The graph whose outputs are every instance norm's input statistics (see the module docstring)."""
    import openvino as ov
    import openvino.opset13 as ops

    graph = model.clone()
    axes = ops.constant(np.array([2, 3], np.int64))
    results = []
    for i, norm in enumerate(_norms(graph, path)):
        x = norm.input_value(0)
        mean = ops.reduce_mean(x, axes, keep_dims=True)
        centred = ops.subtract(x, mean)
        var = ops.reduce_mean(ops.multiply(centred, centred), axes, keep_dims=True)
        for name, value in ((f"stats_mean_{i}", mean), (f"stats_var_{i}", var)):
            value.output(0).get_tensor().set_names({name})
            results.append(ops.result(value))
    return ov.Model(results, graph.get_parameters(), "statistics")


def tile_graph(model: ov.Model, path: Path) -> ov.Model:
    """The graph with every instance norm run on given statistics (see the module docstring)."""
    import openvino as ov
    import openvino.opset13 as ops

    graph = model.clone()
    channels_first = ops.constant(np.array([1, -1, 1, 1], np.int64))
    inputs = []
    for i, norm in enumerate(_norms(graph, path)):
        x = norm.input_value(0)
        channels = x.get_partial_shape()[1]
        stats = []
        for name in (f"stats_mean_{i}", f"stats_var_{i}"):
            parameter = ops.parameter([channels], x.get_element_type(), name=name)
            parameter.output(0).get_tensor().set_names({name})
            inputs.append(parameter)
            stats.append(ops.reshape(parameter, channels_first, special_zero=False))  # (C,) → (1, C, 1, 1)
        epsilon = ops.constant(np.array(norm.get_attributes()["eps"], np.float32))
        normed = ops.divide(ops.subtract(x, stats[0]), ops.sqrt(ops.add(stats[1], epsilon)))
        norm.output(0).replace(normed.output(0))
    return ov.Model(graph.get_results(), [*graph.get_parameters(), *inputs], "tiles")


def _norms(graph: ov.Model, path: Path) -> list[Any]:
    """The graph's instance norms (MVN over H and W, ε inside the root), in topological order; any other MVN (a
    layer norm) cannot be tiled."""
    norms = []
    for node in graph.get_ordered_ops():
        if node.get_type_name() != "MVN":
            continue
        attributes = node.get_attributes()
        axes = node.input_value(1).get_node() if node.get_input_size() > 1 else None
        spatial = axes is not None and axes.get_type_name() == "Constant" and sorted(axes.get_vector()) == [2, 3]
        if not (spatial and attributes.get("normalize_variance") and attributes.get("eps_mode") == "INSIDE_SQRT"):
            raise OpenVinoModelError(f"{path}: a normalisation other than instance norm cannot be tiled (try --tile 0)")
        norms.append(node)
    return norms


def _margin(graph: ov.Model, path: Path) -> int:
    """The receptive-field margin, px, from the Pad and (transposed) convolution nodes in topological order."""
    rows: list[SpatialLayer] = []
    cols: list[SpatialLayer] = []
    for node in graph.get_ordered_ops():
        kind = node.get_type_name()
        if kind in UNSUPPORTED:
            raise OpenVinoModelError(f"{path}: its {kind} node cannot be tiled (try --tile 0)")
        if kind in CONVOLUTIONS:
            attributes = node.get_attributes()
            if attributes.get("auto_pad", "explicit") != "explicit":
                raise OpenVinoModelError(
                    f"{path}: its {kind} node pads automatically and cannot be tiled (try --tile 0)"
                )
            kernel = node.input_value(1).get_partial_shape().to_shape()[-2:]  # weights end in (kH, kW)
            for axis, layers in enumerate((rows, cols)):
                layers.append(
                    SpatialLayer(
                        CONVOLUTIONS[kind],
                        kernel[axis],
                        attributes["strides"][axis],
                        attributes["dilations"][axis],
                        attributes["pads_begin"][axis],
                    )
                )
        elif kind == "Pad":
            begins = node.input_value(1).get_node()
            if begins.get_type_name() != "Constant":
                raise OpenVinoModelError(
                    f"{path}: a Pad node whose pads are not constants cannot be tiled (try --tile 0)"
                )
            pads = begins.get_vector()  # (N, C, H, W) begins
            rows.append(SpatialLayer("pad", pad=int(pads[2])))
            cols.append(SpatialLayer("pad", pad=int(pads[3])))
    return max(receptive_margin(rows), receptive_margin(cols))
