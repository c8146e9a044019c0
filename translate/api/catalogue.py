"""What can be loaded and trained by name: the named models and the registered recipes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from translate.deploy.models import NamedModel


@dataclass(frozen=True)
class RecipeInfo:
    """A training method as `translate.train(recipe=...)` takes it."""

    name: str
    summary: str  # what it does, and the paper
    kind: str  # "translator" or "generator"
    data: str  # the data it trains on: "unpaired", "paired", "images" or "classes"
    presets: tuple[str, ...]  # named settings for `preset=`


def models() -> list[NamedModel]:
    """The models `translate.load` takes by name: the shipped ones, then the official CycleGAN and pix2pix
    generators (downloaded on first use), as `translate models` lists them."""
    from translate.deploy.models import named_models

    return named_models()


def available_recipes() -> list[RecipeInfo]:
    """The registered training methods with their presets (imports PyTorch)."""
    from translate.recipes import RECIPES

    return [RecipeInfo(s.name, s.summary, s.kind, s.data, tuple(s.presets)) for s in RECIPES.values()]
