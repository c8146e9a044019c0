"""Networks and losses: shapes, sizes against the papers' architectures, loss values, the image pool."""

from __future__ import annotations

import pytest
import torch

from translate.losses import ImagePool, discriminator_loss, generator_loss
from translate.networks.layers import init_weights
from translate.networks.patchgan import PatchDiscriminator
from translate.networks.resnet import ResnetGenerator


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_sizes() -> None:
    # The reference ResNet-9 CycleGAN generator and 70×70 PatchGAN have exactly these parameter counts.
    assert count(ResnetGenerator(num_blocks=9)) == 11_378_179
    assert count(PatchDiscriminator()) == 2_764_737


@pytest.mark.parametrize(("size", "patches"), [(32, 2), (64, 6), (256, 30)])
def test_shapes(size: int, patches: int) -> None:
    g = ResnetGenerator(1, 3, base_channels=8, num_blocks=2)
    x = torch.rand(2, 1, size, size) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    d = PatchDiscriminator(3, base_channels=8)
    assert d(y).shape == (2, 1, patches, patches)


def test_patchgan_receptive_field_is_70() -> None:
    d = PatchDiscriminator(1, base_channels=4, norm="none")  # instance norm would couple every position
    init_weights(d)
    x = torch.rand(1, 1, 128, 128, requires_grad=True)
    d(x)[0, 0, 6, 6].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70


def test_init_weights_statistics() -> None:
    g = ResnetGenerator(num_blocks=2)
    init_weights(g, 0.02)
    conv = g.layers[1].weight.detach()
    assert abs(float(conv.mean())) < 2e-3 and abs(float(conv.std()) - 0.02) < 2e-3


def test_loss_values() -> None:
    real, fake = torch.full((1, 1, 2, 2), 1.0), torch.zeros(1, 1, 2, 2)
    assert [float(v) for v in discriminator_loss("lsgan", real, fake)] == [0.0, 0.0]
    assert float(generator_loss("lsgan", fake)) == 1.0
    bce_real, bce_fake = discriminator_loss("vanilla", torch.zeros(1), torch.zeros(1))
    assert torch.isclose(bce_real, torch.log(torch.tensor(2.0))) and torch.isclose(bce_fake, bce_real)
    assert float(generator_loss("hinge", torch.ones(3))) == -1.0
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss("nope", fake)  # type: ignore[arg-type]


def test_image_pool_history_and_state() -> None:
    pool = ImagePool(3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # fills up first
    seen = torch.cat([pool.query(torch.full((1, 1, 1, 1), 10.0 + i)) for i in range(40)]).flatten().tolist()
    assert any(v < 3 for v in seen) and any(v >= 10 for v in seen)  # both history and fresh images come out

    copy = ImagePool(3, seed=99)
    copy.load_state(pool.state(), torch.device("cpu"))
    batch = torch.full((4, 1, 1, 1), 50.0)
    assert torch.equal(pool.query(batch), copy.query(batch))
    assert ImagePool(0, seed=0).query(batch).equal(batch)
