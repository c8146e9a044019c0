"""Config parsing: --set overrides by annotation, loud unknown keys, and a lossless round trip."""

from __future__ import annotations

import pytest

from translate.config import apply_overrides, from_dict, to_dict
from translate.errors import ConfigError
from translate.recipes.cyclegan import PRESETS, CycleGANConfig


def test_overrides_parse_by_annotation() -> None:
    config = apply_overrides(
        CycleGANConfig(),
        ["lr=1e-3", "data.flip=false", "num_blocks=4", "load_size=none", "train.steps=7", "gan_loss=vanilla"],
    )
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)
    assert config.data.flip is False
    assert config.num_blocks == 4 and config.data.load_size is None
    assert config.train.steps == 7 and config.gan_loss == "vanilla"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lambda_cycel=1", "did you mean lambda_cycle"),
        ("flip=maybe", "expects true or false"),
        ("num_blocks=two", "expects int"),
        ("gan_loss=wgan", "must be one of lsgan, vanilla"),
        ("no_equals_sign", "key=value"),
        ("image_size=8", "at least 16"),
        ("image_size=20", "too small for a 3-layer PatchGAN"),
        ("image_size=30", "multiple of 4"),
        ("lr=-1", "positive"),
    ],
)
def test_bad_overrides_fail_clearly(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(CycleGANConfig(), [override])


def test_defaults_are_the_papers() -> None:
    config = CycleGANConfig()
    assert (config.optim.lr, config.optim.beta1, config.train.batch_size) == (2e-4, 0.5, 1)
    assert (config.lambda_cycle, config.lambda_identity, config.pool_size) == (10.0, 0.5, 50)
    assert config.gan_loss == "lsgan" and config.norm == "instance"
    assert config.resolved_num_blocks == 9 and config.data.resolved_load_size == 286
    small = apply_overrides(config, {"data.image_size": 128})
    assert small.resolved_num_blocks == 6 and small.data.resolved_load_size == 143


def test_round_trip_and_presets() -> None:
    config = apply_overrides(CycleGANConfig(), ["lr=3e-4", "image_size=64"])
    assert from_dict(CycleGANConfig, to_dict(config)) == config
    for values in PRESETS.values():
        apply_overrides(CycleGANConfig(), dict(values))  # every preset is valid
    with pytest.raises(ConfigError, match="unknown config keys"):
        from_dict(CycleGANConfig, {**to_dict(config), "bogus": 1})


def test_cyclegan_glyphs_preset_is_the_measured_command_line() -> None:
    # pretrained/README.md's glyph figures come from these options; `--preset glyphs` must reproduce them.
    measured = {
        "data.image_size": 64,
        "data.flip": False,
        "data.load_size": 64,
        "train.steps": 2000,
        "train.batch_size": 1,
        "generator_channels": 32,
        "train.ema_half_life": 200,
        "lambda_identity": 0,
    }
    preset = apply_overrides(CycleGANConfig(), dict(PRESETS["glyphs"]))
    assert preset == apply_overrides(CycleGANConfig(), measured)
    assert preset.lambda_identity == 0 and preset.data.resolved_load_size == 64  # no identity term, no jitter
