"""The registry of training recipes: an explicit dict, looked up loudly."""

from __future__ import annotations

import difflib
import functools

from translate.errors import ConfigError
from translate.recipes import cgan, cyclegan, dcgan, generation, pix2pix, wgan_gp
from translate.recipes.base import RecipeSpec, epoch_steps

RECIPES: dict[str, RecipeSpec] = {
    "cyclegan": RecipeSpec(
        name="cyclegan",
        summary="unpaired A↔B translation (Zhu et al. 2017)",
        config_class=cyclegan.CycleGANConfig,
        build=cyclegan.CycleGAN,
        build_generator=cyclegan.build_generator,
        directions=cyclegan.DIRECTIONS,
        make_data=cyclegan.make_data,
        default_steps=epoch_steps,
        presets=cyclegan.PRESETS,
    ),
    "pix2pix": RecipeSpec(
        name="pix2pix",
        summary="paired A→B translation with a U-Net and a conditional PatchGAN (Isola et al. 2017)",
        config_class=pix2pix.Pix2PixConfig,
        build=pix2pix.Pix2Pix,
        build_generator=pix2pix.build_generator,
        directions=pix2pix.DIRECTIONS,
        make_data=pix2pix.make_data,
        default_steps=epoch_steps,
        presets=pix2pix.PRESETS,
    ),
    "dcgan": RecipeSpec(
        name="dcgan",
        summary="unconditional generation (Radford et al. 2015)",
        config_class=dcgan.DCGANConfig,
        build=dcgan.DCGAN,
        build_generator=generation.build_generator,
        directions=generation.DIRECTIONS,
        make_data=generation.make_data,
        default_steps=epoch_steps,
        presets=dcgan.PRESETS,
    ),
    "wgan-gp": RecipeSpec(
        name="wgan-gp",
        summary="unconditional generation with a gradient-penalised critic (Gulrajani et al. 2017)",
        config_class=wgan_gp.WGANGPConfig,
        build=wgan_gp.WGANGP,
        build_generator=generation.build_generator,
        directions=generation.DIRECTIONS,
        make_data=generation.make_data,
        default_steps=epoch_steps,
        presets=wgan_gp.PRESETS,
    ),
    "cgan": RecipeSpec(
        name="cgan",
        summary="class-conditional generation, one sub-folder per class (Mirza & Osindero 2014)",
        config_class=cgan.CGANConfig,
        build=cgan.CGAN,
        build_generator=generation.build_generator,
        directions=generation.DIRECTIONS,
        make_data=functools.partial(generation.make_data, labeled=True),
        default_steps=epoch_steps,
        presets=cgan.PRESETS,
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
