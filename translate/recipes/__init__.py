"""The registry of training recipes: an explicit dict, looked up loudly."""

from __future__ import annotations

import difflib

from translate.config import ConfigError
from translate.recipes import cyclegan
from translate.recipes.base import RecipeSpec

RECIPES: dict[str, RecipeSpec] = {
    "cyclegan": RecipeSpec(
        name="cyclegan",
        summary="unpaired A↔B translation (Zhu et al. 2017)",
        config_class=cyclegan.CycleGANConfig,
        build=cyclegan.CycleGAN,
        build_generator=cyclegan.build_generator,
        directions=cyclegan.DIRECTIONS,
        make_data=cyclegan.make_data,
        default_steps=cyclegan.default_steps,
        presets=cyclegan.PRESETS,
    ),
}


def get_recipe(name: str) -> RecipeSpec:
    """The recipe called `name`; an unknown name fails with the closest matches."""
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(RECIPES), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; available: {', '.join(RECIPES)}") from None
