"""The official pretrained CycleGAN and pix2pix generators, by name: `--model horse2zebra`.

The original releases (Zhu et al. 2017; Isola et al. 2017) serve one PyTorch state dict per generator. On first use
the file is downloaded into `cache_dir()/models/<family>/`, its sha256 recorded (trust on first use, as for the
datasets: the servers publish no checksums), its tensors read with `torch.load(weights_only=True)` (never an
unpickle of arbitrary objects), renamed onto our networks and saved beside it as an ordinary translate checkpoint.
Every later use loads that checkpoint, with no network, after checking the kept .pth against its record.

Names: CycleGAN generators keep the release's names (horse2zebra, style_monet); pix2pix ones carry a `pix2pix-`
prefix (pix2pix-sat2map), because sat2map, map2sat and facades_label2photo exist in both releases. A CycleGAN file
holds one generator, stored as the checkpoint's a2b (`G_AB`); the other way is another file (zebra2horse).

No torch at import: `translate models` lists these instantly.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from translate.data.known import cache_dir, download, mirror, record_download, verify_download
from translate.errors import CheckpointError, ModelError

if TYPE_CHECKING:
    from torch import Tensor, nn

_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Family:
    """One release: where its generators are on the mirror, what they are, and where ours keeps them."""

    folder: str  # URL path of its .pth files after the mirror host
    architecture: str  # what its files hold, for messages
    module: str  # the generator's name inside our checkpoint: the recipe's a2b module
    layout: Literal["resnet", "unet"]  # the reference network its state dicts come from


FAMILIES: dict[str, Family] = {  # family name = recipe name
    "cyclegan": Family("/cyclegan/pretrained_models", "CycleGAN ResNet-9 generator", "G_AB", "resnet"),
    "pix2pix": Family("/pix2pix/models-pytorch", "pix2pix U-Net-256 generator", "G", "unet"),
}


@dataclass(frozen=True)
class OfficialModel:
    """One generator file of a release, under the name `--model` takes."""

    name: str  # what --model takes
    family: str  # "cyclegan" or "pix2pix": the recipe, and the release it comes from
    file: str  # the release's file name, without .pth
    description: str
    reverse: str | None = None  # the official model that translates the other way

    @property
    def url(self) -> str:
        return f"{mirror()}{FAMILIES[self.family].folder}/{self.file}.pth"


def _cyclegan(file: str, description: str, reverse: str | None = None) -> OfficialModel:
    return OfficialModel(file, "cyclegan", file, description, reverse)


def _pix2pix(file: str, description: str, reverse: str | None = None) -> OfficialModel:
    return OfficialModel(f"pix2pix-{file}", "pix2pix", file, description, reverse and f"pix2pix-{reverse}")


def _registry(*models: OfficialModel) -> dict[str, OfficialModel]:
    table = {model.name: model for model in models}
    if len(table) != len(models):  # a name given twice would silently hide a model
        raise ValueError("an official model name is listed twice")
    return table


# Listed explicitly (not discovered) so the table is stable and reviewable.
OFFICIAL_MODELS: dict[str, OfficialModel] = _registry(
    _cyclegan("apple2orange", "apples → oranges (ImageNet photos)", "orange2apple"),
    _cyclegan("orange2apple", "oranges → apples (ImageNet photos)", "apple2orange"),
    _cyclegan("summer2winter_yosemite", "Yosemite in summer → in winter (Flickr photos)", "winter2summer_yosemite"),
    _cyclegan("winter2summer_yosemite", "Yosemite in winter → in summer (Flickr photos)", "summer2winter_yosemite"),
    _cyclegan("horse2zebra", "horses → zebras (ImageNet photos)", "zebra2horse"),
    _cyclegan("zebra2horse", "zebras → horses (ImageNet photos)", "horse2zebra"),
    _cyclegan("monet2photo", "Monet paintings → photos", "style_monet"),
    _cyclegan("style_monet", "landscape photos → paintings in Monet's style", "monet2photo"),
    _cyclegan("style_cezanne", "landscape photos → paintings in Cezanne's style"),
    _cyclegan("style_ukiyoe", "landscape photos → ukiyo-e prints"),
    _cyclegan("style_vangogh", "landscape photos → paintings in Van Gogh's style"),
    _cyclegan("sat2map", "aerial photos → map tiles (trained unpaired)", "map2sat"),
    _cyclegan("map2sat", "map tiles → aerial photos (trained unpaired)", "sat2map"),
    _cyclegan("cityscapes_photo2label", "street photos → semantic label maps (Cityscapes)", "cityscapes_label2photo"),
    _cyclegan("cityscapes_label2photo", "semantic label maps → street photos (Cityscapes)", "cityscapes_photo2label"),
    _cyclegan("facades_photo2label", "building photos → facade label maps (CMP Facades)", "facades_label2photo"),
    _cyclegan("facades_label2photo", "facade label maps → building photos (CMP Facades)", "facades_photo2label"),
    _cyclegan("iphone2dslr_flower", "iPhone flower photos → DSLR-like shallow depth of field"),
    _pix2pix("edges2shoes", "edge sketches → shoe photos"),
    _pix2pix("sat2map", "aerial photos → map tiles (trained on pairs)", "map2sat"),
    _pix2pix("map2sat", "map tiles → aerial photos (trained on pairs)", "sat2map"),
    _pix2pix("facades_label2photo", "facade label maps → building photos (trained on pairs)"),
    _pix2pix("day2night", "daytime photos → the same scene at night"),
)


def lookup(name: str) -> OfficialModel:
    """The official model called NAME; an unknown name fails with the closest matches."""
    if name in OFFICIAL_MODELS:
        return OFFICIAL_MODELS[name]
    close = difflib.get_close_matches(name, list(OFFICIAL_MODELS), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ModelError(f"unknown official model {name!r}{hint}; `translate models` lists them")


def _paths(model: OfficialModel) -> tuple[Path, Path]:
    """(the release's .pth, our checkpoint converted from it) in the cache.

    The checkpoint takes the model's name, so what is derived from its file name (an export's default name) tells
    pix2pix-sat2map from sat2map.
    """
    folder = cache_dir() / "models" / model.family
    return folder / f"{model.file}.pth", folder / f"{model.name}.safetensors"


def is_cached(name: str) -> bool:
    """Whether official model NAME is converted and ready to use without a download."""
    return _paths(OFFICIAL_MODELS[name])[1].is_file()


def describe() -> list[tuple[str, str, str, bool]]:
    """Rows `(family, name, description, is_cached)` for the `translate models` table."""
    return [(m.family, m.name, m.description, is_cached(m.name)) for m in OFFICIAL_MODELS.values()]


def other_way(name: str, direction: str) -> str:
    """Why official model NAME cannot run `direction`, and which official model to use instead."""
    model = OFFICIAL_MODELS[name]
    what = f"{name} translates one way only ({model.description}): the release has one generator per file"
    if model.reverse:
        return f"{what}; for the other way use --model {model.reverse} instead of --direction {direction}"
    return f"{what}, and none for the other way"


# ------------------------------------------------------------------------------------------------ fetch


def fetch(name: str, progress: bool = True) -> Path:
    """The translate checkpoint of official model NAME, downloaded and converted on first use.

    Reuse needs no network: the cached checkpoint is used, after the kept .pth (when still there) is checked
    against the sha256 recorded at download; a checkpoint converted from another file is converted again.
    """
    model = lookup(name)
    pth, converted = _paths(model)
    url = model.url
    sha256 = verify_download(pth, url) if pth.is_file() else None
    if converted.is_file():
        source = _converted_from(converted, model)  # also refuses a damaged or foreign checkpoint
        if sha256 in (None, source):
            return converted
    if sha256 is None:
        sha256 = download(url, pth, progress=progress)
        record_download(url, pth, sha256)
    _convert(model, pth, converted, url, sha256)
    return converted


def _converted_from(path: Path, model: OfficialModel) -> str:
    """The sha256 of the .pth the cached checkpoint was made from; a foreign or damaged file is an error."""
    from translate.core import checkpoint

    fix = f"Delete it and run again to convert {model.name} again."
    try:
        meta = checkpoint.read(path).meta
    except CheckpointError:
        raise CheckpointError(f"cached model {path} is unreadable. {fix}") from None
    info = meta.get("info") or {}
    if meta.get("recipe") != model.family or info.get("official") != model.name or "source_sha256" not in info:
        raise CheckpointError(f"cached model {path} is not the converted official {model.name}. {fix}")
    return str(info["source_sha256"])


def _convert(model: OfficialModel, pth: Path, target: Path, url: str, sha256: str) -> None:
    from translate.config import to_dict
    from translate.core import checkpoint

    config, generator = from_state_dict(model.family, read_state_dict(pth), source=str(pth))
    checkpoint.save(
        target,
        recipe=model.family,
        config=to_dict(config),
        step=0,
        modules={FAMILIES[model.family].module: generator},
        info={"official": model.name, "source_url": url, "source_sha256": sha256},
    )


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of an official .pth file, loaded as data only (weights_only: no code in the file can run)."""
    import torch

    fix = "Delete it and run again to download it again, or check what TRANSLATE_MIRROR serves."
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own messages run to paragraphs and suggest weights_only=False: not here
        raise CheckpointError(
            f"{path} cannot be loaded as plain tensors ({type(exc).__name__}: the file is damaged or holds objects "
            f"that weights_only loading refuses). {fix}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict (name → tensor). {fix}")
    return dict(state)


# ------------------------------------------------------------------------------------------ conversion


def official_config(family: str) -> Any:
    """The config of the release's generators: 256 px RGB, 64 base channels; ResNet-9 with instance norm
    (CycleGAN) or U-Net-256 with batch norm and dropout 0.5 (pix2pix), as in the reference code's defaults."""
    from translate.config import DataConfig

    data = DataConfig(image_size=256, channels=3)
    if FAMILIES[family].layout == "resnet":
        from translate.recipes.cyclegan import CycleGANConfig

        return CycleGANConfig(data=data, generator_channels=64, num_blocks=9, norm="instance")
    from translate.recipes.pix2pix import Pix2PixConfig

    return Pix2PixConfig(data=data, generator_channels=64, depth=8, norm="batch", dropout=0.5)


def resnet_official_name(module: str) -> str:
    """The reference ResnetGenerator's name for one of our ResnetGenerator's modules.

    Both are one Sequential in the same order (pad, conv, norm, ReLU, ..., residual blocks, ..., Tanh), so only the
    containers' names differ: `layers.10.body.1` is the reference's `model.10.conv_block.1`.
    """
    return module.replace("layers", "model", 1).replace(".body.", ".conv_block.")


def unet_official_names(depth: int) -> dict[str, str]:
    """Our flat UnetGenerator's conv and norm modules → the reference's nested ones, for `depth` levels.

    The reference nests one UnetSkipConnectionBlock per level inside the one above, each with a Sequential `model`:
    outermost [downconv, submodule, ReLU, upconv, Tanh], intermediate [LeakyReLU, downconv, downnorm, submodule,
    ReLU, upconv, upnorm, (Dropout)], innermost [LeakyReLU, downconv, ReLU, upconv, upnorm]. Ours keeps level i in
    `down[i]` ([(LeakyReLU), conv, (norm)]) and `up[i]` ([ReLU, upconv, norm or Tanh, (Dropout)]).
    """
    names: dict[str, str] = {}
    block = "model.model"  # UnetGenerator.model is the outermost block; its layers are its own `model`
    for i in range(depth):
        if i == 0:
            layers = {"down.0.0": 0, "up.0.1": 3}
        elif i == depth - 1:
            layers = {f"down.{i}.1": 1, f"up.{i}.1": 3, f"up.{i}.2": 4}
        else:
            layers = {f"down.{i}.1": 1, f"down.{i}.2": 2, f"up.{i}.1": 5, f"up.{i}.2": 6}
        names |= {ours: f"{block}.{index}" for ours, index in layers.items()}
        block += ".1.model" if i == 0 else ".3.model"  # where this level's Sequential holds the next level
    return names


def key_map(ours: Iterable[str], official_name: Callable[[str], str]) -> dict[str, str]:
    """Official state-dict key → ours, for each of our keys `module.tensor` (only module paths are renamed)."""
    pairs = (key.rsplit(".", 1) for key in ours)
    return {f"{official_name(module)}.{tensor}": f"{module}.{tensor}" for module, tensor in pairs}


def convert(
    state: Mapping[str, Tensor], network: nn.Module, official_name: Callable[[str], str], *, source: str, what: str
) -> dict[str, Tensor]:
    """An official state dict renamed onto `network`'s keys, once its keys and shapes are checked to fit exactly.

    Raises ModelError naming `source` (and what was missing, unexpected or of the wrong shape) when they do not.
    """
    from torch import nn

    ours = network.state_dict()
    expected = key_map(ours, official_name)
    # PyTorch < 0.4 saved running statistics for every InstanceNorm, although these networks never read them
    # (the reference code deletes them the same way when it loads such files).
    ignored = {
        f"{official_name(name)}.{stat}"
        for name, module in network.named_modules()
        if isinstance(module, nn.InstanceNorm2d) and not module.track_running_stats
        for stat in _RUNNING_STATS
    }
    given = {key: value for key, value in state.items() if key not in ignored}
    problems = _misfits(given, expected, ours)
    if problems:
        raise CheckpointError(
            f"{source} is not an official {what}: {'; '.join(problems)}. Delete it and run again, or check what "
            "TRANSLATE_MIRROR serves."
        )
    converted = {expected[key]: value for key, value in given.items()}
    # Batch norm's step counter is newer than PyTorch 0.4.0, so older files lack it; eval mode never reads it.
    for key, value in ours.items():
        if key.endswith(".num_batches_tracked"):
            converted.setdefault(key, value.new_zeros(()))
    return converted


def _misfits(given: Mapping[str, Tensor], expected: Mapping[str, str], ours: Mapping[str, Tensor]) -> list[str]:
    """Missing keys, unexpected keys and wrong shapes, in official names (a few of each: the line stays short)."""
    missing = [key for key in expected if key not in given and not key.endswith(".num_batches_tracked")]
    unexpected = [key for key in given if key not in expected]
    shapes = [
        f"{key} {_shape(given[key].shape)} instead of {_shape(ours[target].shape)}"
        for key, target in expected.items()
        if key in given and given[key].shape != ours[target].shape
    ]
    named = (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
    return [f"{label} {_some(keys)}" for label, keys in named if keys]


def _some(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _shape(shape: Iterable[int]) -> str:
    return "×".join(str(size) for size in shape) or "scalar"


def from_state_dict(family: str, state: Mapping[str, Tensor], *, source: str) -> tuple[Any, nn.Module]:
    """(config, generator in eval mode) from an official `family` state dict; `source` names it in errors."""
    from translate.recipes import get_recipe

    config = official_config(family)
    generator = get_recipe(family).build_generator(config, "a2b")
    resnet = FAMILIES[family].layout == "resnet"
    official_name = resnet_official_name if resnet else unet_official_names(config.depth).__getitem__
    generator.load_state_dict(
        convert(state, generator, official_name, source=source, what=FAMILIES[family].architecture), strict=True
    )
    return config, generator.eval()
