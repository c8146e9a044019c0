"""The machinery a recipe's train_step uses without knowing about devices: prepare, autocast, frozen, optimize.

Everything about *how* a step runs lives here, so recipes read like their papers: the device, mixed precision
(bf16 autocast, or fp16 autocast with one gradient scaler per optimiser), channels_last memory, torch.compile,
fused Adam, cuDNN autotuning, gradient checkpointing, and DistributedDataParallel when launched by torchrun.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from translate.errors import ConfigError, DeviceError

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The option's name changed in PyTorch 2.12 (broadcast_buffers is deprecated there).
_NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU; an explicit device that is missing is an error."""
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu (or auto)")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("--device mps: Apple's MPS backend is not available; use --device cpu (or auto)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bf16 natively (where bf16 autocast is a speed-up, not an emulation)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        # AVX-512 BF16 or AMX: oneDNN's bf16 convolutions run about 1.6-1.9× faster than fp32 there.
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is bf16 where the device has it natively, else fp32 (fp16 is only ever chosen explicitly)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a GPU; on the CPU use bf16 (or fp32)")
    return precision


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun launch."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int


def launched_distributed() -> Distributed | None:
    """The torchrun environment (RANK, WORLD_SIZE, ...) when there is more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Distributed(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=world,
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )


class Engine:
    """Holds the device and numeric settings; recipes call its verbs and nothing device-specific."""

    def __init__(
        self,
        device: str = "auto",
        *,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        grad_checkpointing: bool = False,
    ) -> None:
        """`precision` auto: bf16 where the device has it natively, else fp32. `channels_last` None: on CUDA only
        (oneDNN's CPU convolutions measured slower with it). `compile`: torch.compile each network.
        `grad_checkpointing`: generators recompute their blocks in the backward pass, trading time for memory."""
        self.dist = launched_distributed() if dist.is_available() and dist.is_initialized() else None
        self.device = resolve_device(device)
        if self.dist is not None and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        self.compile = compile
        self.grad_checkpointing = grad_checkpointing
        self._scalers: dict[int, torch.amp.GradScaler] = {}

    # -- what the run is ---------------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.dist.rank if self.dist else 0

    @property
    def world_size(self) -> int:
        return self.dist.world_size if self.dist else 1

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that writes files and logs."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "grad_checkpointing": self.grad_checkpointing,
            "world_size": self.world_size,
        }

    @contextlib.contextmanager
    def backend_settings(self) -> Iterator[None]:
        """Library-wide switches for the length of a run, put back afterwards.

        cuDNN autotuning: training shapes are fixed, so timing the candidate algorithms once pays off at once.
        TF32 matrix multiplies for the fp32 parts (autocast's fp32 ops, the optimiser).
        """
        if self.device.type != "cuda":
            yield
            return
        saved = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = saved[0]
            torch.set_float32_matmul_precision(saved[1])

    # -- networks and optimisers -------------------------------------------------------------------------
    def prepare(self, module: nn.Module, *, partial: bool = False) -> nn.Module:
        """A network ready to train: on the device, in its memory format, checkpointed, distributed, compiled.

        Call after initialising the weights; keep the returned module (it may be a wrapper). `unwrap` gives the
        plain network back for checkpoints and export. `partial`: a step may leave some of its parameters unused
        (a progressively grown network's higher resolutions), which DDP must then look for after every backward.
        """
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if self.grad_checkpointing and hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = True
        if self.dist is not None:
            if self.device.type == "cuda":  # (SyncBatchNorm has no CPU kernels: there each rank normalises alone)
                module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # batch statistics over all ranks
            # No buffer sync before each forward: a discriminator runs on real and on fake images before one
            # backward, and re-broadcasting its buffers in between would modify tensors autograd saved
            # (SyncBatchNorm keeps the running statistics equal on every rank anyway).
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = DistributedDataParallel(
                module, device_ids=ids, find_unused_parameters=partial, **_NO_FORWARD_BUFFER_SYNC
            )
        if self.compile:
            module = torch.compile(module)
        return module

    @staticmethod
    def unwrap(module: nn.Module) -> nn.Module:
        """The plain network inside torch.compile and DistributedDataParallel wrappers."""
        module = getattr(module, "_orig_mod", module)
        return module.module if isinstance(module, DistributedDataParallel) else module

    def adam(self, params: Iterable[Tensor], *, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam; the fused single-kernel implementation on CUDA (the papers' optimiser, fewer launches)."""
        fused = True if self.device.type == "cuda" else None
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)

    # -- one step ----------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The forward pass's precision: bf16/fp16 autocast, or nothing to switch for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        non_blocking = self.device.type == "cuda"
        out = {}
        for key, value in batch.items():
            value = value.to(self.device, non_blocking=non_blocking)
            if self.channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    @contextlib.contextmanager
    def frozen(self, *modules: nn.Module) -> Iterator[None]:
        """Use networks as fixed functions: gradients flow through them but not into their weights.

        The generator's step backpropagates through the discriminator. Under DDP the discriminator's gradient
        hooks would then wait for weight gradients that never come, so its forward runs in `no_sync` as well.
        """
        params = [p for m in modules for p in m.parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        with contextlib.ExitStack() as stack:
            for m in modules:
                inner = getattr(m, "_orig_mod", m)
                if isinstance(inner, DistributedDataParallel):
                    stack.enter_context(inner.no_sync())
            try:
                yield
            finally:
                for p, flag in zip(params, flags, strict=True):
                    p.requires_grad_(flag)

    def optimize(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One update: clear gradients, backpropagate `loss`, step (through its own scaler under fp16)."""
        optimizer.zero_grad(set_to_none=True)
        if self.precision != "fp16":
            loss.backward()
            optimizer.step()
            return
        # One scaler per optimiser (PyTorch AMP's recipe for several losses/optimisers): an overflow in the
        # discriminator's gradients must not skip or shrink the generator's step.
        scaler = self._scalers.setdefault(id(optimizer), torch.amp.GradScaler(self.device.type))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    # -- state a checkpoint holds ------------------------------------------------------------------------
    def rng_state(self) -> dict[str, Tensor]:
        """Global RNG states that a resumed run must restore (dropout and other in-graph randomness)."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_rng_state(self, state: dict[str, Tensor]) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def seed(self, seed: int) -> None:
        """Seed the global RNGs; each rank draws its own noise (the same noise everywhere would waste ranks)."""
        torch.manual_seed(seed + 1_000_003 * self.rank)

    def scaler_state(self, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, dict[str, Any]]:
        return {
            name: self._scalers[id(opt)].state_dict() for name, opt in optimizers.items() if id(opt) in self._scalers
        }

    def load_scaler_state(self, state: dict[str, dict[str, Any]], optimizers: dict[str, torch.optim.Optimizer]) -> None:
        if self.precision != "fp16":
            return  # a run resumed in bf16 or fp32 has no use for fp16 loss scales
        for name, values in state.items():
            scaler = torch.amp.GradScaler(self.device.type)
            scaler.load_state_dict(values)
            self._scalers[id(optimizers[name])] = scaler

    # -- collectives (no-ops for one process) -------------------------------------------------------------
    def all_mean(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """Means over ranks of scalar tensors (logged losses), one collective for all of them."""
        if self.dist is None or not values:
            return values
        keys = sorted(values)
        stacked = torch.stack([values[k].float() for k in keys])
        dist.all_reduce(stacked)
        return dict(zip(keys, (stacked / self.world_size).unbind(0), strict=True))

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop request must stop all ranks at the same step)."""
        if self.dist is None:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value)
        return bool(value.item())


def init_distributed(device: str) -> Distributed | None:
    """Join the torchrun process group (NCCL for CUDA, gloo for the CPU); None when launched alone."""
    launch = launched_distributed()
    if launch is None or dist.is_initialized():
        return launch
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))
    return launch


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block before the other ranks (a download they then find in the cache)."""
    ranked = dist.is_available() and dist.is_initialized()
    if ranked and dist.get_rank() != 0:
        dist.barrier()
    yield
    if ranked and dist.get_rank() == 0:
        dist.barrier()


def shutdown_distributed(*, together: bool = False) -> None:
    """Leave the process group. `together`: every rank ended the run the same way, so they meet at a barrier first.

    Gloo's worker threads release a finished collective's tensors after the caller has moved on, and that needs the
    GIL; a rank that reaches interpreter shutdown first is then aborted ("terminate called without an active
    exception", SIGABRT), failing a torchrun launch whose training succeeded. A barrier cannot be queued while a
    worker is still releasing, and its wait lets the worker have the GIL.
    """
    if dist.is_available() and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()
