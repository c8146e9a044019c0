"""OpenVINO backends for `apply`, `sample` and `interpolate`: exported models run on the CPU without torch.

OpenVINO reads the `.onnx` files `translate export` writes (its ONNX frontend keeps their `metadata_props` as the
model's `framework` rt_info) and the OpenVINO IR files (`.xml` + `.bin`) of `translate export --format openvino`,
which carry the same description under `translate`.

* **Precision.** Every model runs with an explicit inference precision hint: OpenVINO's default on CPUs with bf16
  arithmetic is bf16, which changes pictures unchecked (up to 0.07 on [-1, 1] for a ResNet-9). An `.onnx` file
  runs in f32 whatever its weights' precision (an int8 QDQ file runs its quantised layers in int8, the rest in
  f32); an IR runs at the precision its export checked: bf16 only where the CPU has it, int8 (NNCF's quantised
  layers) with f32 elsewhere.
* **Compiled per input shape.** A model is compiled once per set of input shapes it meets, each time from a copy
  reshaped to those static shapes, and the compiled models are kept (least recently used dropped first, within a
  pixel budget), so a folder of mixed sizes compiles each size once rather than once per image.
* **Threads.** One stream, one inference thread per physical core, the latency hint (one request at a time, as
  `apply` and `sample` issue them), threads not pinned to cores.
"""

from __future__ import annotations

import platform
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from translate.backends.base import Backend, ExportSpec, check_generator, check_translator, class_input, typed_feeds
from translate.backends.onnxruntime import physical_cores, runs_on_cpu
from translate.description import ModelDescription
from translate.errors import BackendError, DeviceError, OpenVinoModelError
from translate.files import atomic_copy

if TYPE_CHECKING:
    import openvino as ov

    from translate.backends.openvino_tiling import OpenVinoTiling

IR_SECTION = "translate"  # the rt_info section of an IR that holds the model description
ONNX_SECTION = "framework"  # where OpenVINO's ONNX frontend puts an ONNX file's metadata_props
INSTALL = 'pip install "gan-translate[openvino]"'
# Compiled models are kept while the input pixels they were compiled for add up to at most this (each holds its
# planned activations: about 0.6 KB per pixel for a ResNet-9), and at least the newest is kept.
CACHE_PIXELS = 8 * 512 * 512
X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported here (the optional extra)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def is_x86() -> bool:
    return platform.machine().lower() in X86


def check_device(device: str) -> None:
    """OpenVINO runs translate's models on the CPU; refuse any other device by name."""
    name = device.lower()
    if name in ("auto", "cpu"):
        return
    if name == "cuda" or name.startswith("cuda:") or name == "mps":
        raise DeviceError(f"--device {device}: the OpenVINO backend runs on the CPU; use --backend onnxruntime for it")
    raise DeviceError(f"unknown device {device!r}: the OpenVINO backend takes auto or cpu")


def import_openvino() -> Any:
    """The openvino module; its absence is a one-line error that says how to install it."""
    try:
        import openvino
    except ImportError:
        raise BackendError(
            f"--backend openvino: OpenVINO is not installed; {INSTALL}, or use --backend onnxruntime"
        ) from None
    return openvino


def has_bf16(core: ov.Core) -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_config(precision: str) -> dict[str, Any]:
    """Compile properties for a model that runs at `precision` ("f32" or "bf16" arithmetic)."""
    ov = import_openvino()
    import openvino.properties as props
    import openvino.properties.hint as hints

    return {
        hints.inference_precision: ov.Type.bf16 if precision == "bf16" else ov.Type.f32,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.num_streams: 1,
        props.inference_num_threads: physical_cores(),
        # Unpinned: `apply` decodes and encodes on threads beside the model, and a pinned inference thread cannot
        # move off a core they occupy (measured 1.14× against 1.21× ONNX Runtime's speed on a busy 2-core CPU).
        hints.enable_cpu_pinning: False,
    }


def read_model(path: Path) -> tuple[ov.Core, ov.Model]:
    """A Core and the model at `path` (.onnx or IR .xml); an unreadable file is one clear error."""
    ov = import_openvino()
    core = ov.Core()
    try:
        return core, core.read_model(path)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own for unreadable models
        raise OpenVinoModelError(f"{path}: OpenVINO cannot load it ({str(exc).strip().splitlines()[0]})") from None


def read_description(model: ov.Model, path: Path) -> ModelDescription:
    """The translate description of a model read by OpenVINO: an IR's own section, else the ONNX metadata."""
    for section in (IR_SECTION, ONNX_SECTION):
        if model.has_rt_info([section]):
            entries = model.get_rt_info([section]).astype(dict)
            return ModelDescription.from_metadata({k: v.astype(str) for k, v in entries.items()}, path)
    return ModelDescription.from_metadata({}, path)  # refused there, with the message for foreign files


def write_description(model: ov.Model, description: ModelDescription) -> None:
    """Put `description` into the model's rt_info, where `read_description` finds it in the saved IR."""
    for key, value in description.to_metadata().items():
        model.set_rt_info(value, [IR_SECTION, key])


def from_onnx(path: Path, description: ModelDescription) -> ov.Model:
    """The exported ONNX file at `path` as an OpenVINO model for an IR, `description` in its own section (the
    ONNX metadata OpenVINO carries over is dropped: one description per file)."""
    _, model = read_model(path)
    del model.get_rt_info()[ONNX_SECTION]
    write_description(model, description)
    return model


def run_feeds(model: ov.Model, hint: str, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The model's first output for each feed, computed with arithmetic `hint` (f32 or bf16): export's checks."""
    run = CompiledShapes(import_openvino().Core(), model, compile_config(hint))
    return [run(feed)[0] for feed in feeds]


def save_ir(model: ov.Model, xml: Path) -> int:
    """Write the model as IR, `xml` and the `.bin` beside it (weights as they are: fp32, or int8 where NNCF
    quantised), each atomically, the .bin first; the bytes written."""
    ov = import_openvino()
    with tempfile.TemporaryDirectory(prefix="translate-ir-") as tmp:
        staged = Path(tmp) / "model.xml"
        ov.save_model(model, staged, compress_to_fp16=False)
        # An IR's .xml finds its weights by name, in the .bin of the same stem beside it.
        atomic_copy(staged.with_suffix(".bin"), xml.with_suffix(".bin"))
        atomic_copy(staged, xml)
    return xml.stat().st_size + xml.with_suffix(".bin").stat().st_size


def run_precision(description: ModelDescription, core: ov.Core) -> tuple[str, str]:
    """(arithmetic hint, words for messages) for a model: f32 unless its export checked bf16 and the CPU has it."""
    if description.precision != "bf16":
        return "f32", description.precision
    if has_bf16(core):
        return "bf16", "bf16"
    return "f32", "bf16 export run in fp32: this CPU has no bf16"


class CompiledShapes:
    """One model, compiled for each set of input shapes it is run with (see the module docstring).

    Calls take feeds by input name and return the outputs in the model's order.
    """

    def __init__(self, core: ov.Core, model: ov.Model, config: dict[str, Any]) -> None:
        self.core, self.model, self.config = core, model, config
        self.names = [item.get_any_name() for item in model.inputs]
        self._requests: OrderedDict[tuple, Any] = OrderedDict()  # shapes → infer request, newest last

    @property
    def shapes(self) -> list[tuple]:
        """The input shapes compiled for and kept, oldest first."""
        return list(self._requests)

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        key = tuple(tuple(feeds[name].shape) for name in self.names)
        request = self._requests.pop(key, None)
        if request is None:
            shaped = self.model.clone()
            shaped.reshape({name: list(shape) for name, shape in zip(self.names, key, strict=True)})
            request = self.core.compile_model(shaped, "CPU", self.config).create_infer_request()
            while self._requests and _pixels(key) + sum(_pixels(k) for k in self._requests) > CACHE_PIXELS:
                self._requests.popitem(last=False)
        self._requests[key] = request
        try:
            results = request.infer({name: feeds[name] for name in self.names})
        except Exception as exc:  # OpenVINO's errors; as RuntimeError, one batch fails, not the run
            raise RuntimeError(str(exc).strip().splitlines()[0]) from None
        return list(results.to_tuple())


def _pixels(shapes: tuple) -> int:
    """Pixels of a key's image-shaped (4-D) inputs: what the compiled model's activations scale with."""
    return sum(int(np.prod(shape)) // shape[1] for shape in shapes if len(shape) == 4) or 1


class OpenVinoTranslator:
    """An exported translator (.onnx or IR) run by OpenVINO on the CPU; same interface as the other backends."""

    def __init__(self, path: Path, direction: str | None = None, device: str = "auto") -> None:
        check_device(device)
        self.path = path
        self.core, self.graph = read_model(path)
        self.model = read_description(self.graph, path)
        check_translator(self.model, path, direction)
        self.direction, self.channels, self.stride = self.model.direction, self.model.channels, self.model.stride
        hint, words = run_precision(self.model, self.core)
        self.config = compile_config(hint)
        self.description = f"{self.model.recipe} {self.direction} ({words}), {_name()} on CPU"
        self.compiled = CompiledShapes(self.core, self.graph, self.config)
        self._tiling: OpenVinoTiling | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.compiled({"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def tiling(self) -> OpenVinoTiling:
        """The model as a backend for tiled translation: graphs derived at first use (backends/openvino_tiling.py)."""
        if self._tiling is None:
            from translate.backends.openvino_tiling import OpenVinoTiling

            def compiled(
                graph: ov.Model, hint: str | None = None
            ) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
                return CompiledShapes(self.core, graph, self.config if hint is None else compile_config(hint))

            self._tiling = OpenVinoTiling(self.graph, self.path, compiled)
        return self._tiling


class OpenVinoSampler:
    """An exported image generator (.onnx or IR) run by OpenVINO on the CPU; same interface as the other backends.

    Class walks use two graphs derived on first use, as the ONNX Runtime sampler does: one that also returns the
    `embedding` tensor, and one cut there, fed an embedding in place of the label.
    """

    def __init__(self, path: Path, device: str = "auto") -> None:
        check_device(device)
        self.path = path
        self.core, self.graph = read_model(path)
        self.model = read_description(self.graph, path)
        check_generator(self.model, path)
        hint, words = run_precision(self.model, self.core)
        self.config = compile_config(hint)
        self.description = f"{self.model.recipe} ({words}), {_name()} on CPU"
        self.compiled = CompiledShapes(self.core, self.graph, self.config)
        self._embed: CompiledShapes | None = None
        self._from_embedding: CompiledShapes | None = None

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.compiled(typed_feeds(feeds, self.model))[0]

    def embed(self, labels: np.ndarray) -> np.ndarray:
        """Class embeddings, read off the graph's `embedding` tensor."""
        label = class_input(self.model, self.path, OpenVinoModelError)
        if self._embed is None:
            graph = self.graph.clone()
            self._embedding_port(graph)  # refuses a graph without one
            graph.add_outputs(["embedding"])
            self._embed = CompiledShapes(self.core, graph, self.config)
        # The other inputs do not reach the embedding; zeros of the right shape satisfy the graph.
        feeds = {item.name: np.zeros((len(labels), *item.shape), item.dtype) for item in self.model.inputs}
        feeds[label] = np.ascontiguousarray(labels, dtype=np.int64)
        return self._embed(feeds)[-1].astype(np.float32)

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        """The generator fed a given class embedding: the graph cut at its `embedding` tensor."""
        import openvino as ov
        import openvino.opset13 as ops

        label = class_input(self.model, self.path, OpenVinoModelError)
        if self._from_embedding is None:
            graph = self.graph.clone()
            port = self._embedding_port(graph)
            cut = ops.parameter(port.get_partial_shape(), port.get_element_type(), name="embedding")
            cut.output(0).get_tensor().set_names({"embedding"})
            port.replace(cut.output(0))
            inputs = [p for p in graph.get_parameters() if p.get_friendly_name() != label]
            self._from_embedding = CompiledShapes(self.core, ov.Model(graph.get_results(), [*inputs, cut]), self.config)
        # fp16 exports carry the embedding in float16; feed it in the type the cut graph declares.
        declared = self._from_embedding.model.input("embedding").get_element_type()
        dtype = np.float16 if declared == ov.Type.f16 else np.float32
        typed = typed_feeds({name: value for name, value in feeds.items() if name != label}, self.model)
        return self._from_embedding({**typed, "embedding": embedding.astype(dtype)})[0]

    def _embedding_port(self, graph: ov.Model) -> Any:
        ports = (out for node in graph.get_ordered_ops() for out in node.outputs())
        port = next((out for out in ports if "embedding" in out.get_names()), None)
        if port is None:
            raise OpenVinoModelError(f"{self.path}: no embedding tensor; it is not a class-conditional generator")
        return port


def _name() -> str:
    """The backend as messages name it: "OpenVINO 2026.4.1"."""
    import openvino as ov

    return f"OpenVINO {ov.get_version().split('-')[0]}"


class OpenVinoBackend(Backend):
    """.onnx exports and OpenVINO IR on OpenVINO, on the CPU (the openvino extra)."""

    name = "openvino"
    title = "OpenVINO"
    files: ClassVar[Mapping[str, str]] = {".onnx": "an ONNX export", ".xml": "an OpenVINO IR"}
    export = ExportSpec(name="openvino", suffix=".xml", precisions=("fp32", "bf16", "int8"), title="OpenVINO IR")

    def available(self) -> bool:
        return openvino_installed()

    def suits(self, device: str) -> bool:
        # An x86 CPU, where it outruns ONNX Runtime's CPU provider (BENCHMARKS.md); a GPU is ONNX Runtime's.
        return runs_on_cpu(device) and is_x86() and openvino_installed()

    def kind_of(self, path: Path) -> str:
        return read_description(read_model(path)[1], path).kind

    def translator(self, path: Path, direction: str | None, device: str) -> OpenVinoTranslator:
        return OpenVinoTranslator(path, direction, device)

    def sampler(self, path: Path, device: str) -> OpenVinoSampler:
        return OpenVinoSampler(path, device)
