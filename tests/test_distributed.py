"""DistributedDataParallel under torchrun, on the CPU with gloo: two real processes, launched as a user would.

A small wrapper script (written into the test's folder) runs the ordinary command line and, after training, has
every rank dump its networks, so the test can compare the ranks' weights without any hook in the product.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_shapes
from safetensors import safe_open
from safetensors.torch import load_file

from translate.core import checkpoint, engine
from translate.errors import DataError
from translate.training import launch as trainer
from translate.training.launch import TrainRequest
from translate.training.loop import TrainingStopped

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not torch.distributed.is_available(), reason="torch.distributed with gloo"
)

TINY = [
    "--device",
    "cpu",
    "--image-size",
    "32",
    "--set",
    "generator_channels=8",
    "--set",
    "discriminator_channels=8",
    "--set",
    "log_every=2",
    "--set",
    "checkpoint_every=2",
    "--set",
    "preview_every=2",
]

# Trainer.fit, wrapped: when it returns, each rank saves {module.key: tensor} of its plain networks, with the
# names of the parameters (as opposed to buffers) in the file's metadata; then the ordinary CLI runs.
DUMP_WEIGHTS = """\
import json
import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from translate.training import launch as trainer
from translate.cli import main

fit = trainer.Trainer.fit


def fit_and_dump(self, *args, **kwargs):
    last = fit(self, *args, **kwargs)
    modules = self.recipe.modules()
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous().clone()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    # The recipe's own control state (BEGAN's k_t, ADA's p, ...) under "extra.", which every rank must agree on too.
    tensors |= {f"extra.{k}": v.detach().cpu().contiguous().clone() for k, v in self.recipe.extra_state().items()}
    parameters = [f"{name}.{key}" for name, module in modules.items() for key, _ in module.named_parameters()]
    path = Path(__file__).parent / f"rank{dist.get_rank()}.safetensors"
    save_file(tensors, str(path), metadata={"parameters": json.dumps(parameters)})
    return last


trainer.Trainer.fit = fit_and_dump
sys.argv[0] = "translate"
main()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout
    return done.stdout


def torchrun(tmp_path: Path, args: list[str], processes: int = 2) -> str:
    """`translate ARGS` in `processes` DDP processes, each dumping its weights to tmp_path/rank{N}.safetensors."""
    script = tmp_path / "dump_weights.py"
    script.write_text(DUMP_WEIGHTS)
    for old in tmp_path.glob("rank*.safetensors"):
        old.unlink()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    return run([*launch, "--master_port", str(free_port()), str(script), *args])


def rank_weights(tmp_path: Path, rank: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A rank's dumped tensors, and which of them are parameters."""
    path = tmp_path / f"rank{rank}.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        parameters = json.loads(handle.metadata()["parameters"])
    return load_file(str(path)), parameters


def assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str] | None = None) -> None:
    keys = sorted(a) if keys is None else keys
    assert keys and all(key in a and key in b for key in keys)
    for key in keys:
        assert torch.equal(a[key], b[key]), key


def assert_ranks_agree(tmp_path: Path, ckpt: Path) -> None:
    """Both ranks hold exactly the same networks, and the checkpoint (rank 0's) holds them too. (Recipe state may
    be each rank's own: a CycleGAN image pool holds the rank's own generated images.)"""
    rank0, _ = rank_weights(tmp_path, 0)
    rank1, _ = rank_weights(tmp_path, 1)
    assert rank0.keys() == rank1.keys()
    networks = sorted(key for key in rank0 if not key.startswith("extra."))
    assert_equal(rank0, rank1, networks)
    assert_equal(rank0, checkpoint.load_tensors(ckpt), networks)


def samples(ckpt: Path) -> int:
    return checkpoint.read(ckpt).meta["info"]["samples"]


def test_two_processes_train_identical_weights_and_resume_under_two_or_one(unpaired_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["train", str(unpaired_data), "--recipe", "cyclegan", "--out", str(out), "--name", "ddp", *TINY]
    args += ["--batch-size", "1"]
    run_dir = out / "ddp"

    output = torchrun(tmp_path, [*args, "--steps", "4"])
    assert "cpu ×2 processes" in output and "batch 1 per process" in output
    # rank 0 alone writes: one metrics file with one line per log step, one checkpoint per checkpoint step
    assert [p.relative_to(run_dir) for p in run_dir.rglob("metrics.jsonl")] == [Path("metrics.jsonl")]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == [
        "step_00000002.safetensors",
        "step_00000004.safetensors",
    ]
    assert sorted(p.name for p in (run_dir / "previews").iterdir()) == ["step_00000002.png", "step_00000004.png"]
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    ckpt = checkpoint.checkpoint_path(run_dir, 4)
    assert_ranks_agree(tmp_path, ckpt)
    info = checkpoint.read(ckpt).meta["info"]
    assert info["engine"]["world_size"] == 2
    assert samples(ckpt) == 4 * 1 * 2  # steps × batch × processes

    # resumed under two processes
    torchrun(tmp_path, [*args, "--resume", "--steps", "6"])
    ckpt = checkpoint.latest_checkpoint(run_dir)
    assert ckpt == checkpoint.checkpoint_path(run_dir, 6)
    assert_ranks_agree(tmp_path, ckpt)
    assert samples(ckpt) == 8 + 2 * 1 * 2

    # resumed by one process: the sample counter goes on from where the two left it
    single = ["train", "--resume", "--steps", "8", "--out", str(out), "--name", "ddp", "--device", "cpu"]
    output = run([sys.executable, "-m", "translate", *single])
    assert "resuming at step 6" in output and " cpu, " in output and "per process" not in output
    ckpt = checkpoint.latest_checkpoint(run_dir)
    assert ckpt == checkpoint.checkpoint_path(run_dir, 8)
    assert samples(ckpt) == 12 + 2 * 1 * 1
    assert checkpoint.read(ckpt).meta["info"]["engine"]["world_size"] == 1
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6, 8]


def test_two_processes_with_batch_norm_share_parameters(tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_shapes(images, 8, shape="circle")
    out = tmp_path / "runs"
    args = ["train", str(images), "--recipe", "dcgan", "--out", str(out), "--name", "dcgan", *TINY]
    torchrun(tmp_path, [*args, "--batch-size", "4", "--steps", "2"])

    rank0, parameters = rank_weights(tmp_path, 0)
    rank1, _ = rank_weights(tmp_path, 1)
    # DDP averages gradients, so parameters agree exactly; batch-norm running statistics are each rank's own
    # on the CPU (SyncBatchNorm needs CUDA), and the checkpoint keeps rank 0's.
    assert any("running_mean" in key for key in rank0) and not any("running_mean" in key for key in parameters)
    assert_equal(rank0, rank1, parameters)
    ckpt = checkpoint.checkpoint_path(out / "dcgan", 2)
    assert_equal(rank0, checkpoint.load_tensors(ckpt), sorted(rank0))
    assert samples(ckpt) == 2 * 4 * 2


@pytest.mark.parametrize("recipe", ["infogan", "began", "progan"])
def test_two_processes_agree_on_weights_and_recipe_state(recipe: str, tmp_path: Path) -> None:
    # InfoGAN: D's body is shared by two heads (Q's unused on real images); BEGAN: k_t comes from the ranks'
    # averaged losses, so every rank must hold the same value, and it must have moved; ProGAN: its two steps train
    # 4 px and then fade 8 px in (one step per phase at this global batch), leaving the 16 px layers unused.
    images = tmp_path / "images"
    make_shapes(images, 8, shape="circle")
    out = tmp_path / "runs"
    args = ["train", str(images), "--recipe", recipe, "--out", str(out), "--name", recipe, "--preset", "tiny", *TINY]
    torchrun(tmp_path, [*args, "--batch-size", "4", "--steps", "2"])

    rank0, parameters = rank_weights(tmp_path, 0)
    rank1, _ = rank_weights(tmp_path, 1)
    assert_equal(rank0, rank1, parameters + [key for key in rank0 if key.startswith("extra.")])
    if recipe == "began":
        assert 0 < float(rank0["extra.began.k"]) <= 1
    ckpt = checkpoint.checkpoint_path(out / recipe, 2)
    assert_equal(rank0, checkpoint.load_tensors(ckpt), parameters)
    assert samples(ckpt) == 2 * 4 * 2


@pytest.mark.parametrize(
    ("outcome", "together"),
    [(None, True), (TrainingStopped("stopped", interrupted=True), True), (DataError("bad data"), False)],
)
def test_ranks_meet_before_leaving_when_they_ended_together(
    monkeypatch: pytest.MonkeyPatch, outcome: Exception | None, together: bool
) -> None:
    # Leaving the process group without a barrier let gloo's worker threads outlive the interpreter: about one
    # successful 2-process run in 25 ended with a SIGABRT. A rank that failed alone must not wait for the others.
    calls: list[str] = []
    monkeypatch.setattr(engine.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(engine.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(engine.dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(trainer, "init_distributed", lambda device: None)

    def run_or_fail(request: TrainRequest, console: object) -> Path:
        if outcome is not None:
            raise outcome
        return Path("run")

    monkeypatch.setattr(trainer, "_train", run_or_fail)
    if outcome is None:
        assert trainer.train(TrainRequest()) == Path("run")
    else:
        with pytest.raises(type(outcome)):
            trainer.train(TrainRequest())
    assert calls == (["barrier", "destroy"] if together else ["destroy"])


@pytest.mark.parametrize("preset", ["cut", "fastcut"])
def test_two_processes_agree_on_cut_and_its_projections(preset: str, unpaired_data: Path, tmp_path: Path) -> None:
    # CUT runs G several times a step (the translation, then its encoder on four images) and trains F with it;
    # FastCUT flips each rank's input at random. The ranks' networks, F included, must stay identical.
    out = tmp_path / "runs"
    args = ["train", str(unpaired_data), "--recipe", "cut", "--preset", preset, "--out", str(out), "--name", "cut"]
    args += [*TINY, "--set", "num_blocks=1", "--set", "num_patches=16", "--set", "projection_channels=16"]
    torchrun(tmp_path, [*args, "--batch-size", "1", "--steps", "2"])
    ckpt = checkpoint.checkpoint_path(out / "cut", 2)
    assert_ranks_agree(tmp_path, ckpt)
    assert any(key.startswith("F.") for key in checkpoint.load_tensors(ckpt))
