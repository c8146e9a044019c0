"""The registry of training recipes: an explicit dict, looked up loudly."""

from __future__ import annotations

import difflib

from translate.core.checkpoint import Checkpoint
from translate.errors import CheckpointError, ConfigError
from translate.recipes import began, cgan, cut, cyclegan, dcgan, generation, infogan, lapgan, pix2pix, progan, wgan_gp
from translate.recipes.base import DataFamily, RecipeSpec, epoch_steps

RECIPES: dict[str, RecipeSpec] = {
    "cyclegan": RecipeSpec(
        name="cyclegan",
        summary="unpaired A↔B translation (Zhu et al. 2017)",
        kind="translator",
        data="unpaired",
        config_class=cyclegan.CycleGANConfig,
        build=cyclegan.CycleGAN,
        build_generator=cyclegan.build_generator,
        directions=cyclegan.DIRECTIONS,
        make_data=cyclegan.make_data,
        default_steps=epoch_steps,
        presets=cyclegan.PRESETS,
    ),
    "cut": RecipeSpec(
        name="cut",
        summary="unpaired A→B translation by patchwise contrastive learning, CUT and FastCUT (Park et al. 2020)",
        kind="translator",
        data="unpaired",
        config_class=cut.CUTConfig,
        build=cut.CUT,
        build_generator=cut.build_generator,
        directions=cut.DIRECTIONS,
        make_data=cyclegan.make_data,
        default_steps=epoch_steps,
        presets=cut.PRESETS,
    ),
    "pix2pix": RecipeSpec(
        name="pix2pix",
        summary="paired A→B translation with a U-Net and a conditional PatchGAN (Isola et al. 2017)",
        kind="translator",
        data="paired",
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
        kind="generator",
        data="images",
        config_class=dcgan.DCGANConfig,
        build=dcgan.DCGAN,
        build_generator=generation.build_generator,
        directions=generation.DIRECTIONS,
        make_data=generation.make_data,
        default_steps=epoch_steps,
        presets=dcgan.PRESETS,
        generator_inputs=generation.generator_inputs,
    ),
    "wgan-gp": RecipeSpec(
        name="wgan-gp",
        summary="unconditional generation with a gradient-penalised critic (Gulrajani et al. 2017)",
        kind="generator",
        data="images",
        config_class=wgan_gp.WGANGPConfig,
        build=wgan_gp.WGANGP,
        build_generator=generation.build_generator,
        directions=generation.DIRECTIONS,
        make_data=generation.make_data,
        default_steps=epoch_steps,
        presets=wgan_gp.PRESETS,
        generator_inputs=generation.generator_inputs,
    ),
    "cgan": RecipeSpec(
        name="cgan",
        summary="class-conditional generation, one sub-folder per class (Mirza & Osindero 2014)",
        kind="generator",
        data="classes",
        config_class=cgan.CGANConfig,
        build=cgan.CGAN,
        build_generator=cgan.build_generator,
        directions=generation.DIRECTIONS,
        make_data=cgan.make_data,
        default_steps=epoch_steps,
        presets=cgan.PRESETS,
        generator_inputs=cgan.generator_inputs,
    ),
    "infogan": RecipeSpec(
        name="infogan",
        summary="generation with interpretable latent codes, learned unsupervised (Chen et al. 2016)",
        kind="generator",
        data="images",
        config_class=infogan.InfoGANConfig,
        build=infogan.InfoGAN,
        build_generator=infogan.build_generator,
        directions=generation.DIRECTIONS,
        make_data=infogan.make_data,
        default_steps=epoch_steps,
        presets=infogan.PRESETS,
        generator_inputs=infogan.generator_inputs,
    ),
    "began": RecipeSpec(
        name="began",
        summary="unconditional generation with an auto-encoder discriminator at equilibrium (Berthelot et al. 2017)",
        kind="generator",
        data="images",
        config_class=began.BEGANConfig,
        build=began.BEGAN,
        build_generator=began.build_generator,
        directions=generation.DIRECTIONS,
        make_data=generation.make_data,
        default_steps=epoch_steps,
        presets=began.PRESETS,
        generator_inputs=began.generator_inputs,
    ),
    "progan": RecipeSpec(
        name="progan",
        summary="unconditional generation, grown from 4×4 to full size (Karras et al. 2018)",
        kind="generator",
        data="images",
        config_class=progan.ProGANConfig,
        build=progan.ProGAN,
        build_generator=progan.build_generator,
        directions=generation.DIRECTIONS,
        make_data=generation.make_data,
        default_steps=progan.default_steps,
        presets=progan.PRESETS,
        generator_inputs=progan.generator_inputs,
        phases=progan.phases,
    ),
    "lapgan": RecipeSpec(
        name="lapgan",
        summary="generation by a Laplacian pyramid of generators, coarse to fine (Denton et al. 2015)",
        kind="generator",
        data="images",
        config_class=lapgan.LAPGANConfig,
        build=lapgan.LAPGAN,
        build_generator=lapgan.build_generator,
        directions=generation.DIRECTIONS,
        make_data=lapgan.make_data,
        default_steps=epoch_steps,
        presets=lapgan.PRESETS,
        generator_inputs=lapgan.generator_inputs,
    ),
}


def recipe_of(ckpt: Checkpoint) -> RecipeSpec:
    """The recipe a checkpoint was trained with; a name this version does not know is the file's fault."""
    try:
        return get_recipe(ckpt.recipe)
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from None


def get_recipe(name: str) -> RecipeSpec:
    """The recipe called `name`; an unknown name fails with the closest matches."""
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(RECIPES), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown recipe {name!r}{hint}; available: {', '.join(RECIPES)}") from None


# The recipe `translate train DATA` uses when --recipe is not given, by the layout DATA shows.
DEFAULT_FOR_DATA: dict[DataFamily, str] = {"unpaired": "cyclegan", "paired": "pix2pix"}


def default_recipe(data_family: str | None, where: object) -> RecipeSpec:
    """The registry's default for a data layout; without one the user must choose (`where` names the data)."""
    if data_family in DEFAULT_FOR_DATA:
        return RECIPES[DEFAULT_FOR_DATA[data_family]]
    choices = "; ".join(f"{spec.name} ({spec.data} data)" for spec in RECIPES.values())
    raise ConfigError(
        f"{where} has no trainA/ and trainB/ (unpaired) nor train/ or A/ and B/ (paired) folders; choose a recipe "
        f"with --recipe: {choices}"
    )
