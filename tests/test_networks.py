"""Networks and losses: shapes, sizes against the papers' architectures, loss values, the image pool."""

from __future__ import annotations

import copy

import pytest
import torch

from translate.losses import ImagePool, discriminator_loss, generator_loss
from translate.networks.layers import init_weights
from translate.networks.patchgan import PatchDiscriminator
from translate.networks.resnet import ResnetGenerator
from translate.networks.unet import UnetGenerator, unet_depth


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


# -- U-Net (pix2pix) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "depth"), [(256, 8), (512, 8), (128, 7), (64, 6), (96, 5), (32, 5), (16, 4)])
def test_unet_depth_halves_while_the_size_allows(size: int, depth: int) -> None:
    assert unet_depth(size) == depth


@pytest.mark.parametrize("size", [16, 32, 64, 96])
@pytest.mark.parametrize(("in_channels", "out_channels"), [(1, 1), (3, 3), (1, 3)])
def test_unet_keeps_the_image_shape(size: int, in_channels: int, out_channels: int) -> None:
    g = UnetGenerator(in_channels, out_channels, depth=unet_depth(size), base_channels=4).eval()
    with torch.no_grad():
        y = g(torch.rand(2, in_channels, size, size) * 2 - 1)
    assert y.shape == (2, out_channels, size, size) and y.abs().max() <= 1


@pytest.mark.parametrize(("depth", "height", "width"), [(4, 16, 48), (5, 96, 32), (6, 64, 128)])
def test_unet_takes_non_square_multiples_of_its_stride(depth: int, height: int, width: int) -> None:
    g = UnetGenerator(3, 3, depth=depth, base_channels=4).eval()
    assert g.stride == 2**depth
    with torch.no_grad():
        assert g(torch.zeros(1, 3, height, width)).shape == (1, 3, height, width)


@pytest.mark.parametrize(("depth", "levels"), [(8, [4, 5, 6]), (7, [4, 5]), (6, [4]), (5, []), (4, [])])
def test_unet_dropout_sits_in_the_deep_decoder_levels(depth: int, levels: list[int]) -> None:
    g = UnetGenerator(3, 3, depth=depth, base_channels=4)
    assert [i for i, up in enumerate(g.up) if any(isinstance(m, torch.nn.Dropout) for m in up)] == levels
    assert not any(isinstance(m, torch.nn.Dropout) for m in g.down.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in UnetGenerator(3, 3, depth=depth, dropout=0).modules())


def test_unet_paper_size() -> None:
    # The reference U-Net-256 generator (ngf 64, batch norm) has exactly this many parameters.
    assert count(UnetGenerator(3, 3)) == 54_413_955  # the reference code prints "54.414 M"


def test_unet_eval_is_deterministic_and_training_draws_dropout() -> None:
    torch.manual_seed(0)
    g = UnetGenerator(3, 3, depth=6, base_channels=4)  # dropout at level 4
    init_weights(g, 0.02)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        g.eval()
        assert torch.equal(g(x), g(x))
        g.train()
        assert not torch.equal(g(x), g(x))
        torch.manual_seed(1)
        first = g(x)
        torch.manual_seed(1)
        assert torch.equal(g(x), first)  # the only noise is the global RNG's


def test_unet_gradient_checkpointing_gives_the_same_output_and_gradients() -> None:
    torch.manual_seed(0)
    plain = UnetGenerator(3, 3, depth=6, base_channels=4)  # with dropout, whose mask the recomputation must reuse
    init_weights(plain, 0.02)
    saving = copy.deepcopy(plain)
    saving.gradient_checkpointing = True
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    outputs, grads = [], []
    for net in (plain, saving):
        net.train()
        image = x.clone().requires_grad_(True)
        torch.manual_seed(1)  # the same dropout masks in both
        out = net(image)
        loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum()
        loss.backward(retain_graph=True)
        loss.backward()  # a second backward pass recomputes the checkpointed blocks once more
        outputs.append(out.detach())
        grads.append([image.grad, *(p.grad for p in net.parameters())])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=0)
    assert all(g is not None for g in grads[1])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    with torch.no_grad():  # batch norm's running statistics moved once, in the forward pass, as without
        for a, b in zip(plain.buffers(), saving.buffers(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
