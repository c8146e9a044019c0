"""What a trained generator is, as one typed value shared by training, export and both inference backends — **no
torch**.

A `ModelDescription` is built from a checkpoint by the PyTorch loader, written by the exporter into the ONNX file's
`metadata_props`, and read back by the ONNX Runtime backend; `to_metadata` and `from_metadata` are the only places
that know the metadata format, and the format version is checked on reading.

A generator declares its inputs by name (`GeneratorInput`): the samplers, the exporter and `translate sample` /
`interpolate` build their feeds from that declaration, so a generator with another input needs no deploy-code
change. The PyTorch network takes the same names as keyword arguments; the ONNX graph has inputs of those names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from translate.errors import ModelError, OnnxModelError

# 4: a prior over a categorical input's values (`weights`); 3: latent codes (input kinds categorical and uniform);
# 2: generator inputs by name; 1: latent_dim and class_names keys. A file is written with the lowest version that
# holds it, so models without codes stay readable by older versions.
FORMAT_VERSION = 4
ModelKind = Literal["translator", "generator"]
InputKind = Literal["normal", "class", "categorical", "uniform"]
_INPUT_KINDS = ("normal", "class", "categorical", "uniform")
CODE_KINDS = ("categorical", "uniform")  # InfoGAN's latent codes
_DTYPES = {"normal": "float32", "class": "int64", "categorical": "int64", "uniform": "float32"}


@dataclass(frozen=True)
class GeneratorInput:
    """One named input of a generator, per sample (the batch axis comes first and is not part of `shape`).

    kind "normal": float32 vectors drawn from N(0, I) (the latent z, shape (dim,)); kind "class": int64 class
    indices, shape (), into `classes`. Latent codes (InfoGAN): kind "categorical", int64 indices, shape (), uniform
    over `classes` (the values' names, "0" to "K-1") unless `weights` gives each value's probability (a cGAN on
    clusters draws each cluster as often as it holds training images); kind "uniform", float32 values drawn from
    U(-1, 1).
    """

    name: str
    kind: InputKind
    shape: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()  # categorical inputs: P(value) per value, summing to 1; empty: uniform

    def __post_init__(self) -> None:
        if self.kind not in _INPUT_KINDS:
            raise ValueError(f"unknown generator input kind {self.kind!r}: use one of {', '.join(_INPUT_KINDS)}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "classes", tuple(self.classes))
        weights = tuple(float(w) for w in self.weights)
        if weights and (
            self.kind != "categorical"
            or len(weights) != len(self.classes)
            or min(weights) < 0
            or abs(sum(weights) - 1) > 1e-6
        ):
            raise ValueError(
                f"input {self.name}: weights must be one probability per value of a categorical input, summing to 1"
            )
        object.__setattr__(self, "weights", weights)

    @property
    def dtype(self) -> str:
        """The numpy dtype name of its values."""
        return _DTYPES[self.kind]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "kind": self.kind, "shape": list(self.shape)}
        if self.classes:
            out["classes"] = list(self.classes)
        if self.weights:
            out["weights"] = list(self.weights)
        return out


@dataclass(frozen=True)
class ModelDescription:
    """One generator of a trained model: what it takes, what it gives and where it came from."""

    recipe: str
    kind: ModelKind
    direction: str  # a2b or b2a for translators, "generate" for generators
    channels: int  # image channels out (and in, for translators)
    image_size: int  # the training size, px
    stride: int = 1  # translators: H and W of the input must be multiples of it
    inputs: tuple[GeneratorInput, ...] = ()  # generators: their named inputs, in call order
    precision: str = "fp32"
    source_step: int = 0
    source_sha256: str = ""
    origin: str = ""  # for messages: "step 1200", "official horse2zebra weights"
    opset: int | None = None  # ONNX exports only
    translate_version: str = ""

    @property
    def is_generator(self) -> bool:
        return self.kind == "generator"

    @property
    def latent(self) -> GeneratorInput:
        """The Gaussian latent input (z) that walks, truncation and saved latents act on."""
        for item in self.inputs:
            if item.kind == "normal":
                return item
        raise ModelError(f"this {self.recipe} model has no Gaussian latent input")

    @property
    def class_input(self) -> GeneratorInput | None:
        return next((item for item in self.inputs if item.kind == "class"), None)

    @property
    def codes(self) -> tuple[GeneratorInput, ...]:
        """The latent codes (InfoGAN's c), in call order; empty for other generators."""
        return tuple(item for item in self.inputs if item.kind in CODE_KINDS)

    @property
    def class_names(self) -> tuple[str, ...]:
        label = self.class_input
        return label.classes if label is not None else ()

    @property
    def format_version(self) -> int:
        """The lowest metadata version that holds this model (older readers open what they can)."""
        if any(item.weights for item in self.inputs):
            return FORMAT_VERSION
        return 3 if self.codes else 2

    def to_metadata(self) -> dict[str, str]:
        """The ONNX `metadata_props` (string → string) of an export."""
        props = {
            "format_version": str(self.format_version),
            "kind": self.kind,
            "recipe": self.recipe,
            "direction": self.direction,
            "channels": str(self.channels),
            "value_range": "-1,1",
            "image_size": str(self.image_size),
            "precision": self.precision,
            "source_sha256": self.source_sha256,
            "source_step": str(self.source_step),
            "origin": self.origin,
            "translate_version": self.translate_version,
        }
        if self.opset is not None:
            props["opset"] = str(self.opset)
        if self.is_generator:
            props["inputs"] = json.dumps([item.to_json() for item in self.inputs])
        else:
            props["stride"] = str(self.stride)
        return props

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: object) -> ModelDescription:
        """Read `to_metadata`'s output back (format 1 too); `where` names the file in errors."""
        if "format_version" not in props or "kind" not in props:
            raise OnnxModelError(
                f"{where}: an ONNX model without translate metadata; export models with `translate export`"
            )
        try:
            version = int(props["format_version"])
            if version > FORMAT_VERSION:
                newer = props.get("translate_version")
                raise OnnxModelError(f"{where}: exported by a newer translate ({newer}); upgrade")
            kind = props["kind"]
            if kind not in ("translator", "generator"):
                raise ValueError(f"kind {kind!r}")
            inputs: tuple[GeneratorInput, ...] = ()
            if kind == "generator":
                inputs = _inputs_v2(props["inputs"]) if version >= 2 else _inputs_v1(props)
            opset = props.get("opset")
            return cls(
                recipe=props["recipe"],
                kind=kind,
                direction=props["direction"],
                channels=int(props["channels"]),
                image_size=int(props["image_size"]),
                stride=int(props.get("stride", 1)),
                inputs=inputs,
                precision=props.get("precision", "fp32"),
                source_step=int(props.get("source_step", 0)),
                source_sha256=props.get("source_sha256", ""),
                origin=props.get("origin") or f"step {props.get('source_step', '?')}",
                opset=int(opset) if opset else None,
                translate_version=props.get("translate_version", ""),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise OnnxModelError(
                f"{where}: damaged translate metadata ({type(exc).__name__}: {exc}); export it again"
            ) from None


def _inputs_v2(text: str) -> tuple[GeneratorInput, ...]:
    return tuple(
        GeneratorInput(
            name=str(item["name"]),
            kind=item["kind"],
            shape=tuple(item.get("shape", ())),
            classes=tuple(item.get("classes", ())),
            weights=tuple(item.get("weights", ())),
        )
        for item in json.loads(text)
    )


def _inputs_v1(props: Mapping[str, str]) -> tuple[GeneratorInput, ...]:
    """Format 1 stored a latent size and class names; its graphs took `z` and, when conditional, `label`."""
    inputs = [GeneratorInput("z", "normal", (int(props["latent_dim"]),))]
    classes = tuple(json.loads(props.get("class_names", "[]")))
    if classes:
        inputs.append(GeneratorInput("label", "class", (), classes))
    return tuple(inputs)
