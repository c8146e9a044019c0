"""`translate evaluate`: statistics against NumPy/SciPy, ONNX feature networks, the Inception download, generator
and translator reports, the memorisation check, through the library and the CLI (CPU, tiny inputs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from scipy import linalg
from typer.testing import CliRunner

from translate.cli import app
from translate.deploy import evaluate, features
from translate.description import GeneratorInput, ModelDescription
from translate.errors import DatasetError, ModelError
from translate.imageio import resize, to_float

runner = CliRunner()


# ------------------------------------------------------------------------------------------------ references


def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def reference_kid(a: np.ndarray, b: np.ndarray, subsets: int, size: int, seed: int) -> tuple[float, float]:
    """Unbiased MMD² under k(x, y) = (x·y / d + 1)³ over the same random subsets torch-fidelity draws."""
    rng = np.random.RandomState(seed)
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        m = size
        mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(mmd - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def reference_precision_recall(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    def radii(x: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(x[:, None] - x[None], axis=2)
        return np.sort(d, axis=1)[:, k]  # the k-th neighbour, itself at index 0

    cross = np.linalg.norm(fake[:, None] - real[None], axis=2)  # (fake, real)
    precision = np.mean((cross <= radii(real)[None, :]).any(axis=1))
    recall = np.mean((radii(fake)[None, :] >= cross.T).any(axis=1))
    return float(precision), float(recall)


def test_statistics_agree_with_a_numpy_scipy_computation() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 8))
    fake = rng.standard_normal((260, 8)) * 1.3 + 0.4
    found = evaluate.fidelity(fake, real, seed=5)
    assert found["fid"] == pytest.approx(reference_fid(fake, real), rel=1e-3)
    kid_mean, kid_std = reference_kid(fake, real, evaluate.KID_SUBSETS, 130, seed=5)  # half of 260
    assert found["kid_mean"] == pytest.approx(kid_mean, rel=1e-3)
    assert found["kid_std"] == pytest.approx(kid_std, rel=1e-3)
    precision, recall = reference_precision_recall(fake, real, evaluate.K_NEAREST)
    assert (found["precision"], found["recall"]) == pytest.approx((precision, recall), rel=1e-3)
    same = evaluate.fidelity(real, real, seed=5)
    assert abs(same["fid"]) < 1e-6 and same["precision"] == same["recall"] == 1.0


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    queries, keys = rng.standard_normal((50, 6)), rng.standard_normal((70, 6))
    distances, indices = evaluate.nearest(queries, keys, k=3, chunk=16)
    full = np.linalg.norm(queries[:, None] - keys[None], axis=2)
    np.testing.assert_array_equal(indices, np.argsort(full, axis=1)[:, :3])
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :3], rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------------------ feature networks


def feature_onnx(path: Path, *, channels: int = 1, side: int = 8, classes: int = 0, seed: int = 0) -> np.ndarray:
    """An ONNX feature network made here: flatten (N, C, side, side) → a fixed random projection to 16 features
    (and, with classes, logits from the first `classes` features). Returns the projection."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((channels * side * side, 16)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weight"], ["features"]),
    ]
    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16])]
    initializers = [numpy_helper.from_array(weight, "weight")]
    if classes:
        starts, ends = np.array([0], np.int64), np.array([classes], np.int64)
        axes = np.array([1], np.int64)
        initializers += [numpy_helper.from_array(v, n) for v, n in ((starts, "s"), (ends, "e"), (axes, "a"))]
        nodes.append(helper.make_node("Slice", ["features", "s", "e", "a"], ["logits"]))
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]))
    graph = helper.make_graph(
        nodes,
        "features",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, side, side])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    if classes:
        model.metadata_props.add(key="classes", value=json.dumps([str(c) for c in range(classes)]))
    onnx.save(model, str(path))
    return weight


def test_onnx_features_convert_resize_and_scale_to_the_declared_input(tmp_path: Path) -> None:
    weight = feature_onnx(tmp_path / "f.onnx", channels=1, side=8)
    network = features.load_features(str(tmp_path / "f.onnx"), "cpu")
    assert (network.channels, network.classes) == (1, ())
    rgb = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    got = network(rgb).features
    gray = features.to_channels(rgb, 1)
    expected = (gray.transpose(0, 3, 1, 2).reshape(3, -1).astype(np.float32) / 255) @ weight
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    big = np.repeat(np.repeat(gray, 4, axis=1), 4, axis=2)  # 32 px: resized to the declared 8
    fitted = np.stack([resize(image, (8, 8)) for image in big])
    np.testing.assert_allclose(network(big).features, network(fitted).features, rtol=1e-6)


def test_feature_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        features.load_features(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="use inception"):
        features.load_features("resnet")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["features"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, None)],
    )
    dynamic = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(dynamic, str(tmp_path / "dyn.onnx"))
    with pytest.raises(ModelError, match="must fix C"):
        features.load_features(str(tmp_path / "dyn.onnx"))


def test_shipped_mnist_features_classify_and_describe_digits() -> None:
    network = features.load_features("mnist", "cpu")
    assert (network.channels, network.classes) == (1, tuple(str(d) for d in range(10)))
    blank = np.zeros((2, 28, 28, 1), np.uint8)
    found = network(blank)
    assert found.features.shape == (2, 128) and found.predicted is not None and found.predicted.shape == (2,)


def test_inception_weights_are_downloaded_once_verified_and_used(
    server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # A state dict of the network's shapes, made without weights: loading is skipped while it is built.
    with monkeypatch.context() as patch:
        patch.setattr(torch, "load", lambda *a, **k: {})
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, **k: None)
        skeleton = FeatureExtractorInceptionV3("shape-only", ["2048"], feature_extractor_weights_path="unused")
    weights = server.root / "weights.pth"
    torch.save(skeleton.state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    monkeypatch.setattr(features, "INCEPTION_URL", f"{server.url}/weights.pth")
    monkeypatch.setattr(features, "INCEPTION_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="sha256"):
        features.inception_weights(progress=False)
    assert not list((tmp_path / "home" / "features").iterdir())  # nothing half-written is kept
    monkeypatch.setattr(features, "INCEPTION_SHA256", digest)
    network = features.load_features("inception", "cpu", progress=False)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    assert network(images).features.shape == (2, 2048)
    weights.unlink()  # the cached copy is used from now on: no network
    cached = Path(features.inception_weights(progress=False))
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest


# ------------------------------------------------------------------------------------------------ generators


class ReplaySampler:
    """A stand-in generator whose samples are given images, in order (class k → images of class k)."""

    def __init__(self, images: np.ndarray, classes: tuple[str, ...] = (), by_class: dict | None = None) -> None:
        inputs = [GeneratorInput("z", "normal", (4,))]
        if classes:
            inputs.append(GeneratorInput("label", "class", (), tuple(classes)))
        self.model = ModelDescription(
            kind="generator", recipe="dcgan", direction="generate", channels=images.shape[-1],
            image_size=images.shape[1], stride=1, inputs=tuple(inputs),
        )  # fmt: skip
        self.images, self.by_class, self.description = images, by_class or {}, "replay"
        self.drawn = 0

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        n = len(feeds["z"])
        if "label" in feeds:
            out = np.stack(
                [self.by_class[int(k)][i % len(self.by_class[int(k)])] for i, k in enumerate(feeds["label"])]
            )
        else:
            rows = np.arange(self.drawn, self.drawn + n) % len(self.images)
            out = self.images[rows]
        self.drawn += n
        return to_float(out)


def digit_like(n: int, value: int, seed: int, side: int = 8) -> np.ndarray:
    """n gray images: a bright square of `value` on black, jittered; (n, side, side, 1) uint8."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, (n, side, side, 1)).astype(np.uint8)
    images[:, 2:6, 2:6] = value
    return images


def write_folder(folder: Path, images: np.ndarray, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{prefix}{i:03d}.png")


def test_a_generator_that_reproduces_the_real_set_scores_perfectly_and_is_flagged_as_copying(tmp_path: Path) -> None:
    feature_onnx(tmp_path / "f.onnx")
    network = features.load_features(str(tmp_path / "f.onnx"), "cpu")
    train = digit_like(40, 200, seed=0)
    real = digit_like(40, 200, seed=1)
    write_folder(tmp_path / "train", train)
    write_folder(tmp_path / "real", real)
    copier = ReplaySampler(train)
    report = evaluate.evaluate_generator(
        copier, network, tmp_path / "real", n=40, train_dir=tmp_path / "train", picture=tmp_path / "nearest.png"
    )
    assert report["generated"] == report["real"] == 40
    m = report["memorization"]
    assert m["generated"]["q50"] == pytest.approx(0.0, abs=1e-6) and m["heldout"]["q50"] > 0.1
    assert m["closer_than_real_1pct"] == 1.0
    with Image.open(tmp_path / "nearest.png") as picture:  # 8 rows of a sample and its 4 neighbours
        assert picture.size == (5 * 10 + 2, 8 * 10 + 2)
    faithful = evaluate.evaluate_generator(ReplaySampler(real), network, tmp_path / "real", n=40)
    assert abs(faithful["fid"]) < 1e-6 and faithful["precision"] == faithful["recall"] == 1.0
    off = evaluate.evaluate_generator(ReplaySampler(digit_like(40, 90, seed=2)), network, tmp_path / "real", n=40)
    assert off["fid"] > 10 * max(abs(faithful["fid"]), 1e-3) and off["kid_mean"] > faithful["kid_mean"]


def test_conditional_generators_get_per_class_figures_and_class_accuracy(tmp_path: Path) -> None:
    # Features whose first two entries are logits: the class a sample is "recognised" as.
    feature_onnx(tmp_path / "f.onnx", classes=2)
    network = features.load_features(str(tmp_path / "f.onnx"), "cpu")
    real = {0: digit_like(20, 60, seed=3), 1: digit_like(20, 250, seed=4)}
    for k, images in real.items():
        write_folder(tmp_path / "real" / str(k), images)
    sampler = ReplaySampler(real[0], classes=("0", "1"), by_class=real)
    report = evaluate.evaluate_generator(sampler, network, tmp_path / "real", n=40)
    assert set(report["per_class"]) == {"0", "1"}
    assert all(abs(figures["fid"]) < 1e-6 for figures in report["per_class"].values())
    predicted = np.concatenate([network(real[k]).predicted for k in (0, 1)])
    truth = np.repeat([0, 1], 20)
    assert report["classified"]["accuracy"] == pytest.approx(np.mean(predicted == truth))


def test_classified_reports_shares_without_requested_classes() -> None:
    found = evaluate.classified(np.array([0, 0, 1, 2]), None, ("a", "b", "c", "d"))
    assert found["share"] == {"a": 0.5, "b": 0.25, "c": 0.25, "d": 0.0} and found["min_share"] == 0.0
    exact = evaluate.classified(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), ("a", "b"))
    assert exact["accuracy"] == 0.75 and exact["per_class"] == {"a": 0.5, "b": 1.0} and exact["min_class"] == 0.5


def test_code_purity_maps_each_value_to_its_majority_class() -> None:
    values = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    predicted = np.array([3, 3, 3, 1, 1, 1, 0, 1, 3, 3])
    found = evaluate.code_purity(predicted, values, 4, ("a", "b", "c", "d"))
    # value 0: 3 of 4 are "d"; value 1: 3 of 4 "b"; value 2: both "d"; value 3 never drawn.
    assert found["values"] == {
        "0": {"class": "d", "share": 0.75, "n": 4},
        "1": {"class": "b", "share": 0.75, "n": 4},
        "2": {"class": "d", "share": 1.0, "n": 2},
    }
    assert found["purity"] == pytest.approx(8 / 10) and found["distinct"] == 2


# ------------------------------------------------------------------------------------------------ translators


def test_paired_figures_compare_outputs_with_same_named_targets_beside_output_equals_input(tmp_path: Path) -> None:
    feature_onnx(tmp_path / "f.onnx")
    network = features.load_features(str(tmp_path / "f.onnx"), "cpu")
    sources, targets = digit_like(12, 90, seed=5), digit_like(12, 220, seed=6)
    write_folder(tmp_path / "A", sources)
    write_folder(tmp_path / "B", targets)
    (tmp_path / "A" / "broken.png").write_bytes(b"not a png")
    lookup = {s.tobytes(): t for s, t in zip(sources, targets, strict=True)}

    def perfect(images: list[np.ndarray]) -> list[np.ndarray]:  # knows the answer for every source
        return [lookup[image.tobytes()] for image in images]

    report = evaluate.evaluate_translator(perfect, 1, network, tmp_path / "A", tmp_path / "B")
    p = report["paired"]
    assert p["pairs"] == 12 and p["output_l1"] == 0.0 and p["output_ssim"] == pytest.approx(1.0)
    assert p["output_ink_iou"] == 1.0 and p["input_l1"] > 0.1
    assert len(report["skipped"]) == 1 and "broken.png" in report["skipped"][0]
    assert abs(report["fid"]) < 1e-6


# ------------------------------------------------------------------------------------------------ the command


def test_cli_evaluates_a_shipped_generator_and_writes_json(tmp_path: Path) -> None:
    feature_onnx(tmp_path / "f.onnx", side=32)
    write_folder(tmp_path / "real", digit_like(30, 200, seed=7, side=32))
    args = ["evaluate", "mnist-dcgan", "--real", str(tmp_path / "real"), "--features", str(tmp_path / "f.onnx")]
    result = runner.invoke(app, [*args, "--n", "30", "--device", "cpu", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "generator" and report["generated"] == 30 and np.isfinite(report["fid"])
    assert "FID" in result.stdout and "precision / recall" in result.stdout
    again = runner.invoke(app, [*args, "--n", "30", "--device", "cpu", "--json", str(tmp_path / "r2.json")])
    assert again.exit_code == 0
    assert json.loads((tmp_path / "r2.json").read_text())["fid"] == report["fid"]  # seeded: the same figures


def test_cli_needs_input_for_a_translator_and_refuses_it_for_a_generator(tmp_path: Path) -> None:
    write_folder(tmp_path / "real", digit_like(4, 200, seed=8))
    translator = runner.invoke(app, ["evaluate", "ming2kai", "--real", str(tmp_path / "real"), "--features", "mnist"])
    assert translator.exit_code != 0 and "--input" in translator.output
    generator = runner.invoke(
        app, ["evaluate", "mnist-dcgan", "--real", str(tmp_path / "real"), "--input", str(tmp_path / "real")]
    )
    assert generator.exit_code != 0 and "no --input" in generator.output


def test_cli_evaluates_the_shipped_translator_on_paired_glyphs(tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parents[1] / "samples"
    args = ["evaluate", "ming2kai", "--input", str(samples / "ming"), "--real", str(samples / "kai")]
    result = runner.invoke(app, [*args, "--features", "mnist", "--device", "cpu", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    paired = json.loads((tmp_path / "r.json").read_text())["paired"]
    assert paired["pairs"] > 0 and paired["output_ink_iou"] > paired["input_ink_iou"]


# ------------------------------------------------------------------------------------------------ folders of images

MNIST_FEATURES = Path(__file__).resolve().parents[1] / "pretrained" / "mnist-features.onnx"


def colour_images(n: int, seed: int, side: int = 16) -> np.ndarray:
    """n random RGB images with a dark square (some ink for the IoU), (n, side, side, 3) uint8."""
    rng = np.random.default_rng(seed)
    images = rng.integers(100, 256, (n, side, side, 3), dtype=np.uint8)
    q = side // 4
    images[:, q : 3 * q, q : 2 * q] = rng.integers(0, 60, (n, 2 * q, q, 3), dtype=np.uint8)
    return images


def write_rgb(folder: Path, images: np.ndarray, suffix: str = ".png") -> None:
    """Images as folder/NNN<suffix>, every third one in a sub-folder (names are matched by relative path)."""
    for i, image in enumerate(images):
        path = folder / ("sub" if i % 3 == 0 else "") / f"{i:03d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def test_a_translators_applied_outputs_score_as_the_translator_does(tmp_path: Path) -> None:
    import translate

    samples = Path(__file__).resolve().parents[1] / "samples"
    args = ["apply", str(samples / "ming"), "--model", "ming2kai", "--out", str(tmp_path / "out"), "--device", "cpu"]
    applied = runner.invoke(app, args)
    assert applied.exit_code == 0, applied.output
    common = {"input": samples / "ming", "features": str(MNIST_FEATURES), "device": "cpu"}
    by_model = translate.evaluate("ming2kai", samples / "kai", **common)
    by_folder = translate.evaluate(tmp_path / "out", samples / "kai", **common)
    assert by_folder.backend == by_folder.figures["kind"] == "images" and by_folder.model == str(tmp_path / "out")
    ignored = {"model", "backend", "kind", "paired"}
    assert {k: v for k, v in by_folder.to_dict().items() if k not in ignored} == {
        k: v for k, v in by_model.to_dict().items() if k not in ignored
    }
    # Paired means agree to float32 rounding: the folder's gray images are compared as three equal channels.
    assert by_folder.figures["paired"] == pytest.approx(by_model.figures["paired"], rel=1e-6)
    assert by_folder.figures["paired"]["pairs"] == 16


def test_identical_folders_score_perfectly_matched_by_relative_path_whatever_the_extension(tmp_path: Path) -> None:
    images = colour_images(12, seed=0)
    write_rgb(tmp_path / "made", images)
    write_rgb(tmp_path / "real", images, suffix=".bmp")  # lossless too: the same pixels under other names
    Image.fromarray(images[0]).save(tmp_path / "made" / "unmatched.png")  # in no pair, but in the FID
    network = features.load_features(str(MNIST_FEATURES), "cpu")
    report = evaluate.evaluate_images(tmp_path / "made", network, tmp_path / "real")
    p = report["paired"]
    assert (report["kind"], report["generated"], report["real"], p["pairs"]) == ("images", 13, 12, 12)
    assert p["output_l1"] == 0.0 and p["output_ssim"] == 1.0 and p["output_ink_iou"] == 1.0
    assert p["output_psnr"] == 100.0  # identical images: the cap
    assert not any(key.startswith("input_") for key in p)  # no --input, no baseline
    rows = dict(evaluate.report_lines({"model": "made", "backend": "images", "seed": 0, **report}))
    assert rows["L1"] == "0.0000" and rows["images"] == "13 in the folder, 12 real"


def test_targets_of_another_size_are_resized_to_the_image_as_for_translators(tmp_path: Path) -> None:
    made, real = colour_images(6, seed=1, side=16), colour_images(6, seed=2, side=8)
    write_rgb(tmp_path / "made", made)
    write_rgb(tmp_path / "real", real)
    network = features.load_features(str(MNIST_FEATURES), "cpu")
    p = evaluate.evaluate_images(tmp_path / "made", network, tmp_path / "real")["paired"]
    expected = [evaluate._pair_figures(a, resize(b, (16, 16))) for a, b in zip(made, real, strict=True)]
    for metric in ("l1", "psnr", "ssim", "ink_iou"):
        assert p[f"output_{metric}"] == pytest.approx(np.mean([row[metric] for row in expected]), abs=1e-12)


def test_input_adds_output_equals_input_over_the_names_all_three_folders_share(tmp_path: Path) -> None:
    sources, targets = colour_images(9, seed=3), colour_images(9, seed=4)
    write_rgb(tmp_path / "input", sources[:8])  # 008 has no input: left out of the pairs
    write_rgb(tmp_path / "made", targets)  # a perfect translation
    write_rgb(tmp_path / "real", targets)
    args = ["evaluate", str(tmp_path / "made"), "--real", str(tmp_path / "real"), "--input", str(tmp_path / "input")]
    result = runner.invoke(app, [*args, "--features", str(MNIST_FEATURES), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    p = report["paired"]
    assert report["backend"] == "images" and p["pairs"] == 8 and p["output_l1"] == 0.0
    difference = np.abs(sources[:8].astype(np.float64) - targets[:8]).mean(axis=(1, 2, 3)) / 255
    assert p["input_l1"] == pytest.approx(difference.mean(), rel=1e-6)  # float32 pixels
    assert p["input_ssim"] < p["output_ssim"] == 1.0 and "output = input" in result.stdout


def test_a_folder_that_is_neither_images_nor_a_run_is_refused_in_one_line(tmp_path: Path) -> None:
    write_rgb(tmp_path / "real", colour_images(4, seed=5))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(ModelError, match=r"neither a run folder .* nor a folder of images"):
        evaluate.images_folder(str(tmp_path / "empty"))
    args = ["--real", str(tmp_path / "real"), "--features", str(MNIST_FEATURES)]
    empty = runner.invoke(app, ["evaluate", str(tmp_path / "empty"), *args])
    assert empty.exit_code == 2 and "neither a run folder" in empty.output
    assert len(empty.output.strip().splitlines()) == 1
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)  # a run folder, even with images beside it
    write_rgb(tmp_path / "run" / "previews", colour_images(2, seed=6))
    run = runner.invoke(app, ["evaluate", str(tmp_path / "run"), *args])
    assert run.exit_code == 2 and "without checkpoints" in run.output
    directed = runner.invoke(app, ["evaluate", str(tmp_path / "real"), *args, "--direction", "b2a"])
    assert directed.exit_code == 2 and "folder of images" in directed.output
