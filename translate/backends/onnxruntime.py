"""ONNX Runtime backends for `apply`, `sample` and `interpolate`: exported models run without torch.

Sessions use every graph optimisation and one intra-op thread per physical core (hyper-threads only contend for
the same vector units). On CUDA, inputs and outputs go through IO binding, and cuDNN picks convolution
algorithms by heuristic: the default exhaustive search re-benchmarks every new input shape, which a folder of
mixed image sizes pays again and again. ONNX Runtime falls back to the CPU silently when the CUDA provider fails
to load, so the provider actually running is checked and named.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from translate.backends.base import Backend, ExportSpec, check_generator, check_translator, class_input, typed_feeds
from translate.description import ModelDescription
from translate.errors import DeviceError, OnnxModelError

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from translate.backends.onnx_tiling import OnnxTiling


def physical_cores() -> int:
    """Physical cores this process may run on (Linux topology files; elsewhere the logical CPU count)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def cuda_devices() -> int:
    """GPUs the CUDA driver sees, asked of the driver itself (no torch, and no failed provider load to log)."""
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        driver = ctypes.CDLL(name)
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def runs_on_cpu(device: str) -> bool:
    """Whether `--device device` means the CPU: "cpu", or "auto" where the CUDA driver sees no GPU."""
    return device.lower() == "cpu" or (device.lower() == "auto" and cuda_devices() == 0)


def _parse_device(device: str) -> tuple[str, int]:
    name = device.lower()
    if name in ("auto", "cpu", "cuda"):
        return name, 0
    if name.startswith("cuda:") and name[5:].isdigit():
        return "cuda", int(name[5:])
    if name == "mps":
        raise DeviceError("--device mps: ONNX Runtime has no MPS provider; use --device cpu (or a .safetensors model)")
    raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def create_session(model: Path | bytes, device: str = "auto") -> tuple[onnxruntime.InferenceSession, str]:
    """An optimised session on `device` and the name of the provider that really runs it ("CUDA:0" or "CPU")."""
    import onnxruntime as ort

    kind, index = _parse_device(device)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = physical_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's own warnings are about its internals, not the user's input
    providers: list[Any] = ["CPUExecutionProvider"]
    want_cuda = kind == "cuda" or (kind == "auto" and cuda_devices() > 0)
    if want_cuda:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            if kind == "cuda":
                raise DeviceError(
                    f"--device {device}: this onnxruntime lacks the CUDA provider; install onnxruntime-gpu"
                )
        else:
            # CUDA and cuDNN may come as nvidia-* wheels (e.g. installed with PyTorch) rather than system libraries.
            if hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia") is not None:
                ort.preload_dlls()
            cuda_options = {"device_id": index, "cudnn_conv_algo_search": "HEURISTIC"}
            providers.insert(0, ("CUDAExecutionProvider", cuda_options))
    try:
        session = ort.InferenceSession(str(model) if isinstance(model, Path) else model, options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
        where = model if isinstance(model, Path) else "the model"
        raise OnnxModelError(f"{where}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
    running = session.get_providers()[0]
    if kind == "cuda" and running != "CUDAExecutionProvider":
        raise DeviceError(
            f"--device {device}: the CUDA provider failed to load (it needs CUDA 12 and cuDNN 9 libraries); "
            "use --device cpu"
        )
    return session, (f"CUDA:{index}" if running == "CUDAExecutionProvider" else "CPU")


def read_description(session: onnxruntime.InferenceSession, path: Path) -> ModelDescription:
    """The translate model description inside an exported model; a model from elsewhere is refused clearly."""
    return ModelDescription.from_metadata(session.get_modelmeta().custom_metadata_map, path)


class OnnxTranslator:
    """An exported translator run by ONNX Runtime; same interface as the PyTorch one."""

    def __init__(self, path: Path, direction: str | None = None, device: str = "auto") -> None:
        self.path, self.device = path, device
        self.session, where = create_session(path, device)
        self.model = read_description(self.session, path)
        check_translator(self.model, path, direction)
        self.direction, self.channels, self.stride = self.model.direction, self.model.channels, self.model.stride
        self.description = f"{self.model.recipe} {self.direction} ({self.model.precision}), ONNX Runtime on {where}"
        self._cuda = where.startswith("CUDA")
        self._device_id = int(where.split(":")[1]) if self._cuda else 0
        self._tiling: OnnxTiling | None = None

    def tiling(self) -> OnnxTiling:
        """The model as a backend for tiled translation: graphs derived at first use (backends/onnx_tiling.py)."""
        if self._tiling is None:
            from translate.backends.onnx_tiling import OnnxTiling

            def session(graph: onnx.ModelProto) -> onnxruntime.InferenceSession:
                return create_session(graph.SerializeToString(), self.device)[0]

            self._tiling = OnnxTiling(self.path, session, self.session)
        return self._tiling

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        try:
            if not self._cuda:
                return self.session.run(["output"], {"image": batch})[0]
            # IO binding: one host-to-device copy in, the output allocated on the GPU and copied back once.
            binding = self.session.io_binding()
            binding.bind_cpu_input("image", np.ascontiguousarray(batch))
            binding.bind_output("output", "cuda", self._device_id)
            self.session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        except Exception as exc:  # ORT's errors are plain Exceptions; as RuntimeError, one batch fails, not the run
            raise RuntimeError(str(exc).splitlines()[0]) from None


class OnnxSampler:
    """An exported image generator run by ONNX Runtime; same interface as the PyTorch one.

    The graph's inputs are the generator's named inputs (`model.inputs`), so feeds pass through by name.
    """

    def __init__(self, path: Path, device: str = "auto") -> None:
        self.path, self.device = path, device
        self.session, where = create_session(path, device)
        self.model = read_description(self.session, path)
        check_generator(self.model, path)
        self.description = f"{self.model.recipe} ({self.model.precision}), ONNX Runtime on {where}"
        self._embed: onnxruntime.InferenceSession | None = None
        self._from_embedding: onnxruntime.InferenceSession | None = None

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["image"], typed_feeds(feeds, self.model))[0]

    def embed(self, labels: np.ndarray) -> np.ndarray:
        """Class embeddings, read off the graph's `embedding` tensor (whatever the model's precision)."""
        label = class_input(self.model, self.path, OnnxModelError)
        if self._embed is None:
            model = self._graph()
            embedding = next((v for v in model.graph.value_info if v.name == "embedding"), None)
            if embedding is None:
                raise OnnxModelError(f"{self.path}: no embedding tensor; it is not a class-conditional generator")
            model.graph.output.append(embedding)
            self._embed, _ = create_session(model.SerializeToString(), self.device)
        # The other inputs do not reach the embedding; zeros of the right shape satisfy the graph.
        feeds = {item.name: np.zeros((len(labels), *item.shape), item.dtype) for item in self.model.inputs}
        feeds[label] = np.ascontiguousarray(labels, dtype=np.int64)
        return self._embed.run(["embedding"], feeds)[0].astype(np.float32)

    def from_embedding(self, feeds: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        """The generator fed a given class embedding: the graph cut at its `embedding` tensor."""
        label = class_input(self.model, self.path, OnnxModelError)
        names = [item.name for item in self.model.inputs if item.name != label]
        if self._from_embedding is None:
            from onnx.utils import Extractor

            cut = Extractor(self._graph()).extract_model([*names, "embedding"], ["image"])
            self._from_embedding, _ = create_session(cut.SerializeToString(), self.device)
        # fp16 models carry the embedding in float16; feed it in the type the cut graph declares.
        declared = {value.name: value.type for value in self._from_embedding.get_inputs()}
        dtype = np.float16 if declared["embedding"] == "tensor(float16)" else np.float32
        typed = typed_feeds({name: feeds[name] for name in names}, self.model)
        return self._from_embedding.run(["image"], {**typed, "embedding": embedding.astype(dtype)})[0]

    def _graph(self) -> onnx.ModelProto:
        """The model with inferred tensor types, for the two cuts above (the onnx package is imported only here)."""
        import onnx

        return onnx.shape_inference.infer_shapes(onnx.load(self.path))


class OnnxRuntimeBackend(Backend):
    """.onnx exports on ONNX Runtime: the CPU, and CUDA GPUs with onnxruntime-gpu."""

    name = "onnxruntime"
    title = "ONNX Runtime"
    files: ClassVar[Mapping[str, str]] = {".onnx": "an ONNX export"}
    export = ExportSpec(name="onnx", suffix=".onnx", precisions=("fp32", "fp16", "int8"), title="ONNX")

    def available(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def suits(self, device: str) -> bool:
        # A GPU: ONNX Runtime's CUDA provider. On a CPU it is the fallback (OpenVINO is faster on x86 CPUs).
        return not runs_on_cpu(device)

    def kind_of(self, path: Path) -> str:
        import onnx  # the metadata alone, without building a session

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return ModelDescription.from_metadata(props, path).kind

    def translator(self, path: Path, direction: str | None, device: str) -> OnnxTranslator:
        return OnnxTranslator(path, direction, device)

    def sampler(self, path: Path, device: str) -> OnnxSampler:
        return OnnxSampler(path, device)
