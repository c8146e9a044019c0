"""The engine's verbs on the CPU: precision choice, frozen networks, gradient checkpointing, bf16 and
channels_last training, a resume in another precision, and the collectives of a lone process."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import Tensor, nn

from translate.config import apply_overrides
from translate.core import checkpoint
from translate.core.engine import Engine, native_bf16, resolve_precision
from translate.errors import ConfigError
from translate.networks.layers import init_weights
from translate.networks.resnet import ResnetGenerator
from translate.recipes.cyclegan import CycleGAN, CycleGANConfig, build_generator
from translate.training.launch import TrainRequest, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not native_bf16(CPU), reason="this CPU has no native bf16 (AVX-512 BF16 or AMX)")


def tiny_config(steps: int = 2) -> CycleGANConfig:
    values = {
        "data.image_size": 32,
        "data.channels": 3,  # what complete_config fills from the data
        "generator_channels": 8,
        "discriminator_channels": 8,
        "num_blocks": 1,
        "pool_size": 3,
        "train.steps": steps,
    }
    return apply_overrides(CycleGANConfig(), values)


def batches(count: int, size: int = 32) -> list[dict[str, Tensor]]:
    """Fixed random images in [-1, 1], the same on every call."""
    generator = torch.Generator().manual_seed(0)
    return [
        {key: torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for key in ("A", "B")} for _ in range(count)
    ]


def train_cyclegan(engine: Engine, steps: int) -> tuple[CycleGAN, list[dict[str, Tensor]]]:
    torch.manual_seed(0)  # what Trainer.fit seeds before the first step
    recipe = CycleGAN(tiny_config(steps), engine)
    metrics = [recipe.train_step(engine.to_device(batch), step) for step, batch in enumerate(batches(steps))]
    return recipe, metrics


def flat(module: nn.Module) -> Tensor:
    return torch.cat([value.detach().float().flatten() for value in module.state_dict().values()])


# -- precision ---------------------------------------------------------------------------------------------


def test_auto_precision_is_bf16_exactly_where_the_cpu_has_it() -> None:
    assert resolve_precision("auto", CPU) == ("bf16" if native_bf16(CPU) else "fp32")
    assert Engine("cpu").precision == resolve_precision("auto", CPU)
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"


@pytest.mark.parametrize(("precision", "expected"), [("fp16", "needs a GPU"), ("fp8", "unknown precision")])
def test_unusable_precision_is_a_config_error(precision: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        resolve_precision(precision, CPU)
    with pytest.raises(ConfigError, match=expected):
        Engine("cpu", precision=precision)


# -- gradient checkpointing --------------------------------------------------------------------------------


def saved_bytes(net: nn.Module, x: Tensor) -> tuple[Tensor, int]:
    """The output of `net(x)`, and how many bytes of activations autograd kept for the backward pass."""
    sizes = []

    def pack(tensor: Tensor) -> Tensor:
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = net(x)
    return out, sum(sizes)


def test_gradient_checkpointing_gives_the_same_output_and_gradients() -> None:
    torch.manual_seed(0)
    plain = ResnetGenerator(3, 3, base_channels=8, num_blocks=2)
    init_weights(plain, 0.02)
    saving = copy.deepcopy(plain)
    saving.gradient_checkpointing = True
    x = torch.rand(2, 3, 16, 16) * 2 - 1

    outputs, grads, kept = [], [], []
    for net in (plain, saving):
        net.train()
        image = x.clone().requires_grad_(True)
        out, size = saved_bytes(net, image)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out.detach())
        grads.append([image.grad, *(p.grad for p in net.parameters())])
        kept.append(size)
    assert kept[1] < kept[0] / 3  # only the stages' boundaries are kept
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-6, atol=1e-6)
    assert len(grads[0]) == len(grads[1])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)

    # without autograd, or in eval mode, there is nothing to save memory on: the plain forward runs
    with torch.no_grad():
        torch.testing.assert_close(saving(x), plain(x), rtol=1e-6, atol=1e-6)
    plain.eval()
    saving.eval()
    out_plain, kept_plain = saved_bytes(plain, x.clone().requires_grad_(True))
    out_saving, kept_saving = saved_bytes(saving, x.clone().requires_grad_(True))
    torch.testing.assert_close(out_saving, out_plain, rtol=1e-6, atol=1e-6)
    assert kept_saving == kept_plain


def test_engine_switches_checkpointing_on_for_generators_only() -> None:
    engine = Engine("cpu", precision="fp32", grad_checkpointing=True)
    assert engine.prepare(ResnetGenerator(3, 3, base_channels=8, num_blocks=1)).gradient_checkpointing
    assert not hasattr(engine.prepare(nn.Conv2d(3, 3, 1)), "gradient_checkpointing")  # a discriminator, say
    fresh = ResnetGenerator(3, 3, base_channels=8, num_blocks=1)
    assert not Engine("cpu", precision="fp32").prepare(fresh).gradient_checkpointing


# -- frozen ------------------------------------------------------------------------------------------------


def test_frozen_networks_pass_gradients_through_but_keep_none() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    net[0].bias.requires_grad_(False)  # frozen by its owner before: must stay frozen
    before = [p.requires_grad for p in net.parameters()]
    engine = Engine("cpu", precision="fp32")
    x = torch.randn(3, 4, requires_grad=True)
    with engine.frozen(net):
        assert not any(p.requires_grad for p in net.parameters())
        net(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert [p.requires_grad for p in net.parameters()] == before == [True, False, True, True]

    with pytest.raises(RuntimeError, match="inside"), engine.frozen(net):
        raise RuntimeError("inside")
    assert [p.requires_grad for p in net.parameters()] == before


# -- training in fp32, bf16 and channels_last ----------------------------------------------------------------


def test_fp32_training_is_deterministic() -> None:
    first, metrics = train_cyclegan(Engine("cpu", precision="fp32"), 2)
    second, _ = train_cyclegan(Engine("cpu", precision="fp32"), 2)
    assert all(torch.isfinite(value) for step in metrics for value in step.values())
    for name, module in first.modules().items():
        assert torch.equal(flat(module), flat(second.modules()[name])), name


@needs_bf16
def test_bf16_training_is_close_to_fp32() -> None:
    torch.manual_seed(0)
    initial = flat(CycleGAN(tiny_config(1), Engine("cpu", precision="fp32")).G_AB)
    fp32, metrics32 = train_cyclegan(Engine("cpu", precision="fp32"), 1)
    bf16, metrics16 = train_cyclegan(Engine("cpu", precision="bf16"), 1)
    # the losses of the first step (before any update) differ by bf16 rounding only
    for key, value in metrics32[0].items():
        assert torch.isfinite(metrics16[0][key])
        torch.testing.assert_close(metrics16[0][key].float(), value, rtol=3e-2, atol=1e-2, msg=key)
    # the weights stay fp32, and after one step they are close, and moved the same way
    assert all(p.dtype == torch.float32 for p in bf16.G_AB.parameters())
    w32, w16 = flat(fp32.G_AB), flat(bf16.G_AB)
    assert (w16 - w32).norm() / w32.norm() < 1e-2
    assert torch.nn.functional.cosine_similarity(w16 - initial, w32 - initial, dim=0) > 0.5

    _, metrics = train_cyclegan(Engine("cpu", precision="bf16"), 2)
    assert all(torch.isfinite(value) for step in metrics for value in step.values())


def test_channels_last_training_checkpoints_plain_weights(tmp_path: Path) -> None:
    engine = Engine("cpu", precision="fp32", channels_last=True)
    recipe, metrics = train_cyclegan(engine, 1)
    assert all(torch.isfinite(value) for value in metrics[0].values())
    trained = recipe.modules()["G_AB"]
    conv = next(m for m in trained.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)

    path = tmp_path / "step.safetensors"
    checkpoint.save(path, recipe=recipe.name, config={}, step=1, modules=recipe.modules())
    fresh = build_generator(recipe.config, "a2b")
    checkpoint.load_module(path, "G_AB", fresh)
    assert next(m for m in fresh.modules() if isinstance(m, nn.Conv2d)).weight.is_contiguous()
    x = batches(1)[0]["A"]
    trained.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(engine.to_device({"x": x})["x"]), rtol=1e-5, atol=1e-5)


# -- runs --------------------------------------------------------------------------------------------------


@needs_bf16
def test_resume_in_another_precision(unpaired_data: Path, tmp_path: Path) -> None:
    tiny = ["generator_channels=8", "discriminator_channels=8", "num_blocks=1", "num_workers=0", "pool_size=3"]
    out, quiet = tmp_path / "runs", Console(quiet=True)
    first = TrainRequest(
        data=str(unpaired_data),
        recipe="cyclegan",
        out=out,
        name="mixed",
        device="cpu",
        precision="fp32",
        options={"train.steps": 2, "data.image_size": 32},
        overrides=tiny,
        progress=False,
    )
    run_dir = train(first, quiet)
    assert checkpoint.read(checkpoint.latest_checkpoint(run_dir)).meta["info"]["engine"]["precision"] == "fp32"

    again = TrainRequest(out=out, name="mixed", resume=True, device="cpu", precision="bf16", progress=False)
    again.options = {"train.steps": 4}
    assert train(again, quiet) == run_dir
    last = checkpoint.read(checkpoint.latest_checkpoint(run_dir))
    assert last.step == 4 and last.meta["info"]["engine"]["precision"] == "bf16"


# -- collectives -------------------------------------------------------------------------------------------


def test_collectives_of_one_process_are_identities() -> None:
    engine = Engine("cpu", precision="fp32")
    assert (engine.rank, engine.world_size, engine.is_main, engine.dist) == (0, 1, True, None)
    values = {"G": torch.tensor(1.5), "D": torch.tensor(0.25, dtype=torch.bfloat16)}
    assert engine.all_mean(values) is values
    assert engine.all_mean({}) == {}
    assert engine.any_rank(True) is True and engine.any_rank(False) is False
