"""Differentiable augmentation (DiffAugment, ADA) and the Improved-GAN layers of the discriminator."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import make_shapes
from safetensors.torch import load_file
from typer.testing import CliRunner

from translate.augment import ADA_INTERVAL, Augment, choose_policy
from translate.cli import app
from translate.core import checkpoint
from translate.losses import discriminator_loss
from translate.networks.dcgan import DCGANDiscriminator, MinibatchDiscrimination, MinibatchStd


def test_diffaugment_changes_every_image_keeps_shapes_and_passes_gradients() -> None:
    augment = Augment("diff")
    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_()
    torch.manual_seed(0)
    y = augment(x)
    assert y.shape == x.shape
    assert all(not torch.allclose(a, b) for a, b in zip(x, y, strict=True))
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: G learns through it
    torch.manual_seed(0)
    assert torch.equal(augment(x), y)  # the global RNG decides: a resumed run draws the same
    gray = augment(torch.rand(2, 1, 16, 16) * 2 - 1)  # no saturation for one channel
    assert gray.shape == (2, 1, 16, 16)


def test_none_and_ada_at_zero_are_the_identity() -> None:
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(Augment("none")(x), x)
    assert torch.equal(Augment("ada")(x), x)  # ADA starts at p = 0


def test_ada_raises_p_when_d_is_confident_on_reals_and_lowers_it_otherwise() -> None:
    ada = Augment("ada", kimg=1)  # fast, to see it move
    batch = 8
    for _ in range(ADA_INTERVAL - 1):
        ada.observe(torch.ones(batch), batch)
    assert float(ada.p) == 0.0  # not yet: p moves every ADA_INTERVAL steps
    ada.observe(torch.ones(batch), batch)  # r_t = 1 > 0.6: D overfits
    raised = float(ada.p)
    assert raised == pytest.approx(ADA_INTERVAL * batch / 1000)
    for _ in range(ADA_INTERVAL):
        ada.observe(-torch.ones(batch), batch)  # r_t = -1 < 0.6
    assert float(ada.p) == pytest.approx(0.0)
    restored = Augment("ada")
    restored.load_state_dict(Augment("ada", kimg=1).state_dict() | {"p": torch.tensor(0.3, dtype=torch.float64)})
    assert float(restored.p) == 0.3  # p travels with the run's state


def test_ada_counts_images_not_the_patches_of_a_patch_discriminator() -> None:
    ada = Augment("ada", kimg=1)
    batch = 2
    patches = torch.ones(batch, 1, 6, 6)  # a PatchGAN's 36 logits per image
    patches[0, 0, :2] = -1.0  # image 0: 24 of 36 patches positive, mean sign 1/3; image 1: 1
    for _ in range(ADA_INTERVAL):
        ada.observe(patches, batch)
    assert float(ada.p) == pytest.approx(ADA_INTERVAL * batch / 1000)  # moved by images seen, once
    patches[1] = -1.0  # mean sign (1/3 - 1) / 2 < 0.6: p comes back down
    for _ in range(ADA_INTERVAL):
        ada.observe(patches, batch)
    assert float(ada.p) == pytest.approx(0.0)


def test_auto_policy_follows_the_dataset_size() -> None:
    assert choose_policy("auto", 1000) == "diff" and choose_policy("auto", 50_000) == "none"
    with pytest.raises(ValueError, match="use auto"):
        choose_policy("sometimes", 10)


def test_minibatch_std_appends_the_groups_mean_spread() -> None:
    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStd(group=4)(x)
    assert out.shape == (8, 4, 4, 4)
    groups = x.reshape(4, 2, 3, 4, 4)  # sample i is in group i mod 2
    expected = groups.var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))
    assert torch.allclose(out[0, 3], expected[0].expand(4, 4)) and torch.allclose(out[1, 3], expected[1].expand(4, 4))
    same = MinibatchStd()(torch.ones(4, 2, 4, 4))
    assert torch.allclose(same[:, 2], torch.full((4, 4, 4), 1e-4))  # a collapsed batch: no spread


def test_minibatch_discrimination_is_large_for_a_collapsed_batch() -> None:
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(16, kernels=10)
    collapsed = layer(torch.ones(6, 16))
    varied = layer(torch.randn(6, 16) * 10)
    assert collapsed.shape == (6, 10)
    assert torch.allclose(collapsed, torch.full((6, 10), 5.0))  # 5 identical others, exp(0) each
    assert varied.mean() < collapsed.mean()


def test_discriminator_options_keep_its_interface() -> None:
    for options in ({"minibatch_std": True}, {"minibatch_kernels": 20}, {"minibatch_std": True, "num_classes": 3}):
        D = DCGANDiscriminator(1, 32, base_channels=8, **options)
        labels = torch.arange(4) % 3 if "num_classes" in options else None
        assert D(torch.randn(4, 1, 32, 32), labels).shape == (4,)


def test_one_sided_label_smoothing_moves_only_the_real_target() -> None:
    logits = torch.tensor([0.5, -1.0])
    real, fake = discriminator_loss("vanilla", logits, logits, real_target=0.9)
    plain_real, plain_fake = discriminator_loss("vanilla", logits, logits)
    assert torch.equal(fake, plain_fake) and not torch.equal(real, plain_real)
    expected = -(0.9 * torch.log(torch.sigmoid(logits)) + 0.1 * torch.log(1 - torch.sigmoid(logits))).mean()
    assert torch.allclose(real, expected)


# ------------------------------------------------------------------------------------------------ in training

TECHNIQUES = [
    ("dcgan", ["augment=ada", "historical_averaging=0.01", "real_label=0.9"]),
    ("dcgan", ["augment=diff", "feature_matching=true", "minibatch_std=true"]),
    ("cgan", ["augment=diff", "minibatch_kernels=10"]),
    ("wgan-gp", ["augment=diff", "feature_matching=true", "historical_averaging=0.01"]),
    ("cyclegan", ["augment=ada"]),
    ("cyclegan", ["augment=diff", "gan_loss=vanilla"]),
]


@pytest.mark.parametrize(("recipe", "settings"), TECHNIQUES, ids=[" ".join(s) for _, s in TECHNIQUES])
def test_techniques_train_and_resume_bit_exactly(tmp_path, recipe: str, settings: list[str]) -> None:
    runner = CliRunner()
    if recipe == "cgan":
        make_shapes(tmp_path / "data" / "circle", 4, shape="circle", seed=3)
        make_shapes(tmp_path / "data" / "square", 4, shape="square", seed=4)
    elif recipe == "cyclegan":
        make_shapes(tmp_path / "data" / "trainA", 4, shape="circle", seed=3)
        make_shapes(tmp_path / "data" / "trainB", 4, shape="square", seed=4)
    else:
        make_shapes(tmp_path / "data", 8, shape="circle", seed=3)
    options = [part for setting in [*settings, "checkpoint_every=2", "num_workers=0"] for part in ("--set", setting)]
    args = ["train", str(tmp_path / "data"), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    first = runner.invoke(app, [*args, "--recipe", recipe, "--name", "a", "--preset", "tiny", "--steps", "4", *options])
    assert first.exit_code == 0, first.output
    shutil.copytree(tmp_path / "runs" / "a", tmp_path / "runs" / "b")
    checkpoint.latest_checkpoint(tmp_path / "runs" / "b").unlink()
    again = runner.invoke(app, [*args, "--name", "b", "--resume"])
    assert again.exit_code == 0, again.output
    expected = load_file(checkpoint.latest_checkpoint(tmp_path / "runs" / "a"))
    got = load_file(checkpoint.latest_checkpoint(tmp_path / "runs" / "b"))
    assert expected.keys() == got.keys()
    assert [key for key in expected if not torch.equal(expected[key], got[key])] == []
    if "historical_averaging=0.01" in settings:
        assert "extra.history.G.count" in expected and float(expected["extra.history.G.count"]) == 4
    if "augment=ada" in settings:  # p is held, per discriminator in cyclegan
        held = [key for key in expected if key.startswith("extra.augment") and key.endswith(".p")]
        assert held == (["extra.augment_A.p", "extra.augment_B.p"] if recipe == "cyclegan" else ["extra.augment.p"])
        logged = (tmp_path / "runs" / "a" / "metrics.jsonl").read_text()
        assert all(f'"{name}"' in logged for name in (["aug_p_A", "aug_p_B"] if recipe == "cyclegan" else ["aug_p"]))
