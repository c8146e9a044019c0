"""fp16 conversion and int8 quantisation of exported generators, and the PSNR/SSIM metrics that judge them."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from translate.deploy.metrics import psnr, ssim
from translate.deploy.quantize import quantize_int8, to_float16
from translate.errors import QuantizationError

SIZE = 32


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN ResNet generator (8 channels, 2 blocks) exported with dynamic batch and size."""
    torch = pytest.importorskip("torch")
    from translate.networks.resnet import ResnetGenerator

    with torch.random.fork_rng():
        torch.manual_seed(0)
        generator = ResnetGenerator(3, 3, base_channels=8, num_blocks=2).eval()
    batch = torch.export.Dim("batch")
    h = torch.export.Dim("h", min=4, max=1024)
    w = torch.export.Dim("w", min=4, max=1024)
    program = torch.onnx.export(
        generator,
        (torch.randn(2, 3, SIZE, SIZE),),
        None,
        dynamo=True,
        input_names=["image"],
        output_names=["output"],
        dynamic_shapes=({0: batch, 2: 4 * h, 3: 4 * w},),
        opset_version=18,
        external_data=False,
        verbose=False,
    )
    path = tmp_path_factory.mktemp("quantize") / "g.onnx"
    program.save(str(path), external_data=False)
    return path


def images(n: int, seed: int) -> np.ndarray:
    """Blocky random colour images: smooth enough that the network's outputs have structure for SSIM."""
    coarse = np.random.default_rng(seed).uniform(-1, 1, (n, 3, SIZE // 4, SIZE // 4)).astype(np.float32)
    return coarse.repeat(4, axis=2).repeat(4, axis=3)


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"image": x})[0]


# ------------------------------------------------------------------------------------------------ metrics


def test_ssim_of_identical_images_is_one_and_psnr_infinite() -> None:
    x = images(2, 0)
    assert ssim(x, x) == 1.0
    assert psnr(x, x) == math.inf


def test_ssim_falls_as_noise_grows() -> None:
    x = images(2, 0)
    rng = np.random.default_rng(1)
    scores = [ssim(x, np.clip(x + rng.normal(0, sigma, x.shape), -1, 1)) for sigma in (0.01, 0.05, 0.2)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_psnr_of_constant_offset() -> None:
    x = images(1, 0) * 0.5  # away from ±1 so the offset is never clipped
    assert psnr(x, x + 0.02) == pytest.approx(20 * math.log10(2 / 0.02), abs=1e-3)  # 40 dB
    assert psnr(x, x + 0.02, data_range=1.0) == pytest.approx(20 * math.log10(1 / 0.02), abs=1e-3)


def test_ssim_works_on_images_smaller_than_its_window() -> None:
    x = images(1, 0)[:, :, :6, :5]
    assert ssim(x, x) == 1.0
    assert 0 < ssim(x, -x * 0.5) < 1


def test_metrics_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((1, 3, 8, 8)), np.zeros((1, 3, 8, 9)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        psnr(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)))


def test_modules_do_not_import_torch() -> None:
    code = "import sys, translate.deploy.metrics, translate.deploy.quantize; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------ float16


def test_float16_model_is_valid_and_close(fp32_model: Path) -> None:
    fp32 = onnx.load(fp32_model)
    fp16 = to_float16(fp32)
    onnx.checker.check_model(fp16, full_check=True)
    assert fp16.ir_version == fp32.ir_version
    # The interface is unchanged: float32 image in, float32 output out.
    for value in (*fp16.graph.input, *fp16.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [v.name for v in fp16.graph.input] == ["image"]
    assert [v.name for v in fp16.graph.output] == ["output"]
    # Conv weights are half precision; Pad's int64 pads are not touched.
    types = {t.name: t.data_type for t in fp16.graph.initializer}
    conv = next(n for n in fp16.graph.node if n.op_type == "Conv")
    assert types[conv.input[1]] == onnx.TensorProto.FLOAT16
    pad = next(n for n in fp16.graph.node if n.op_type == "Pad")
    assert types[pad.input[1]] == onnx.TensorProto.INT64

    x = images(2, 1)
    expected, actual = run(fp32, x), run(fp16, x)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    assert psnr(expected, actual) > 50  # measured 72.2-72.8 dB over three random initialisations
    assert ssim(expected, actual) > 0.9999  # measured 0.999993-0.999996
    # Dynamic sizes survive the conversion.
    assert run(fp16, images(1, 2)[:, :, :, :16]).shape == (1, 3, SIZE, 16)


def test_float16_keeps_instance_norm_in_float32(fp32_model: Path) -> None:
    fp16 = onnx.shape_inference.infer_shapes(to_float16(onnx.load(fp32_model)), strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in fp16.graph.value_info}
    types.update({t.name: t.data_type for t in fp16.graph.initializer})
    norms = [n for n in fp16.graph.node if n.op_type == "InstanceNormalization"]
    assert norms
    initializers = {t.name for t in fp16.graph.initializer}
    for node in norms:
        assert [types[name] for name in node.input] == [onnx.TensorProto.FLOAT] * 3
        assert types[node.output[0]] == onnx.TensorProto.FLOAT
        assert set(node.input[1:]) <= initializers  # scale and bias stay float32 weights, read without a Cast
    convs = [n for n in fp16.graph.node if n.op_type == "Conv"]
    assert all(types[n.output[0]] == onnx.TensorProto.FLOAT16 for n in convs)


def test_float16_without_exceptions_has_no_float32_compute(fp32_model: Path) -> None:
    fp16 = onnx.shape_inference.infer_shapes(to_float16(onnx.load(fp32_model), keep_float32=()), strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in fp16.graph.value_info}
    norm = next(n for n in fp16.graph.node if n.op_type == "InstanceNormalization")
    assert types[norm.output[0]] == onnx.TensorProto.FLOAT16
    assert sum(n.op_type == "Cast" for n in fp16.graph.node) == 2  # the input's and the output's


def test_float16_handles_constants_casts_and_outputs_of_kept_nodes() -> None:
    """Constants (value_float, ConstantOfShape's default) and Cast(to=float) become float16; an output written by
    a kept node stays float32, and a kept node reading it reads it in float32; unnamed nodes get distinct Casts."""
    from onnx import TensorProto, helper

    nodes = [  # no names, as a hand-built graph often has
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Mul", ["x", "half"], ["scaled"]),
        helper.make_node("InstanceNormalization", ["scaled", "gain", "shift"], ["normed"]),
        helper.make_node("InstanceNormalization", ["normed", "gain", "shift"], ["renormed"]),
        helper.make_node("Cast", ["count"], ["count_f"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),  # float32 zeros by default
        helper.make_node("Sum", ["renormed", "count_f", "zeros"], ["shifted"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 4, 4]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("normed", TensorProto.FLOAT, ["n", 2, 4, 4]),
            helper.make_tensor_value_info("shifted", TensorProto.FLOAT, ["n", 2, 4, 4]),
        ],
        [
            onnx.numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "gain"),
            onnx.numpy_helper.from_array(np.array([0.0, 0.5], np.float32), "shift"),
        ],
    )
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    fp16 = to_float16(fp32)
    onnx.checker.check_model(fp16, full_check=True)
    assert fp16.ir_version == 9
    assert [v.type.tensor_type.elem_type for v in fp16.graph.output] == [TensorProto.FLOAT] * 2
    initializers = {t.name: t.data_type for t in fp16.graph.initializer}
    assert initializers == {"gain": TensorProto.FLOAT, "shift": TensorProto.FLOAT}  # only InstanceNorm reads them
    cast = next(n for n in fp16.graph.node if n.output == ["count_f"])
    assert cast.attribute[0].i == TensorProto.FLOAT16
    inferred = onnx.shape_inference.infer_shapes(fp16, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.output)}
    for op in ("Constant", "ConstantOfShape"):
        assert types[next(n for n in fp16.graph.node if n.op_type == op).output[0]] == TensorProto.FLOAT16
    norms = [n for n in fp16.graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 2 and all(types[n.input[0]] == TensorProto.FLOAT for n in norms)
    # The first norm writes the graph output itself, and the second reads it from there, not a float16 copy.
    assert norms[0].output[0] == norms[1].input[0] == "normed"

    feeds = {"x": images(1, 0)[:, :2, :4, :4], "count": np.array([3])}
    expected, actual = session(fp32).run(None, feeds), session(fp16).run(None, feeds)
    for e, a in zip(expected, actual, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, atol=1e-2)


def test_float16_keeps_resize_scales_float32() -> None:
    """Resize's scales must be float32 whatever the data type: it stays float32 (the converter's default list)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["features"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["features", "", "scales"], ["upsampled"], name="resize", mode="nearest"),
        helper.make_node("Conv", ["upsampled", "w"], ["y"], name="conv_2", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [
            onnx.numpy_helper.from_array(rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32), "w"),
            onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        ],
    )
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    fp16 = to_float16(fp32)
    onnx.checker.check_model(fp16, full_check=True)
    initializers = {t.name: t.data_type for t in fp16.graph.initializer}
    assert initializers == {"w": TensorProto.FLOAT16, "scales": TensorProto.FLOAT}
    resize = next(n for n in fp16.graph.node if n.op_type == "Resize")
    assert resize.input[2] == "scales"

    x = images(1, 0)[:, :, :8, :8]
    expected, actual = session(fp32).run(None, {"x": x})[0], session(fp16).run(None, {"x": x})[0]
    assert actual.dtype == np.float32 and actual.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(actual, expected, atol=1e-2)


# ------------------------------------------------------------------------------------------------ int8


def test_int8_model_runs_and_stays_close(fp32_model: Path, tmp_path: Path) -> None:
    calibration = images(8, 3)
    out = tmp_path / "g.int8.onnx"
    quantize_int8(fp32_model, out, ({"image": calibration[i : i + 1]} for i in range(len(calibration))))
    model = onnx.load(out)
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Weights use 7 bits: CPUs without VNNI (AVX2) add pairs of uint8 x int8 products in a saturating int16.
    weights = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["g.int8.onnx"]  # no temp files left beside it
    x = images(4, 4)
    expected, actual = run(fp32_model, x), run(out, x)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    # Measured 0.985-0.990 (PSNR 37.1-38.1 dB) over three random initialisations on an AVX2 CPU without VNNI,
    # where full-range int8 weights gave 0.68-0.81.
    assert ssim(expected, actual) > 0.95


def test_int8_without_calibration_raises(fp32_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.int8.onnx"
    with pytest.raises(QuantizationError, match="calibration"):
        quantize_int8(fp32_model, out, iter(()))
    assert not out.exists()
    assert issubclass(QuantizationError, ValueError)
