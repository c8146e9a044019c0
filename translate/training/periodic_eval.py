"""FID and KID while training (`train.eval_every`), of exactly the weights a run would deploy, and the best kept.

Every `eval_every` steps (and at the last) the deployed generator (its moving average when the run keeps one,
translate.core.ema) makes `eval_n` images, or translates `eval_n` inputs, in eval mode without autocast, as the
PyTorch backend of `sample` / `apply` runs it; one feature network compares them with a real set. The figures are
`translate evaluate`'s (deploy/evaluate.py: `fidelity`, the same samplers, feeds and feature extraction); only the
real set's features are computed once per run rather than per call.

The real set: `train.eval_real` (a folder), else the training data as the recipe sees it (the first eval_n samples
of its counter-addressed stream: crops at the training size, every image at most once for a generator). A
translator translates its held-out A images and is compared with held-out B when the data has them (testA/testB),
else training A crops with training B crops.

Nothing here draws from the training RNG streams: latents come from numpy generators of the run's seed (the same
ones at every evaluation, so successive figures differ by the weights alone), and the global states are put back
after each evaluation all the same. The best FID so far is saved in every checkpoint's `info.eval_best`, so a
resumed run keeps comparing against it.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from translate.backends.pytorch import TorchSampler, TorchTranslator
from translate.config import to_dict
from translate.core import checkpoint
from translate.core.ema import ema_name
from translate.deploy.evaluate import BATCH, fidelity, load_folder, stacks
from translate.deploy.features import FeatureNetwork, extract, load_features
from translate.deploy.inference import run_model
from translate.deploy.sampling import feeds_for, latents, spread_labels
from translate.description import ModelDescription
from translate.errors import CheckpointError, ConfigError, DatasetError, ExportedModelError, UsageError
from translate.imageio import to_uint8
from translate.networks.layers import input_stride
from translate.recipes.base import RecipeSpec, TrainingData

BEST = "best.safetensors"  # in the run folder, beside checkpoints/


def best_path(run_dir: Path) -> Path:
    return run_dir / BEST


@dataclass(frozen=True)
class Best:
    """The lowest FID so far and the step that scored it (what checkpoints record as `info.eval_best`)."""

    step: int
    fid: float

    def to_info(self) -> dict[str, Any]:
        return {"step": self.step, "fid": self.fid}


def best_after_resume(info: dict[str, Any], run_dir: Path, step: int) -> Best | None:
    """The best evaluation a run resumed at `step` has seen: its checkpoint's record, else (a checkpoint saved with
    evaluation off, or by an older version) best.safetensors when that file is not from after the checkpoint."""
    saved = info.get("eval_best")
    if isinstance(saved, dict) and isinstance(saved.get("step"), int) and isinstance(saved.get("fid"), int | float):
        return Best(saved["step"], float(saved["fid"]))
    found = _best_file(run_dir)
    return found if found is not None and found.step <= step else None


def stale_best_note(run_dir: Path, best: Best | None, step: int) -> str | None:
    """A note when best.safetensors is not the evaluation a run resumed at `step` knows as its best (it was written
    after that checkpoint, by the run a crash or a stop cut short), else None."""
    found = _best_file(run_dir)
    if found is None and not best_path(run_dir).is_file():
        return None
    if found is not None and best is not None and found.step == best.step:
        return None
    beats = f"FID {best.fid:.3f} (step {best.step})" if best is not None else "nothing yet"
    return (
        f"note: {BEST} is not the best evaluation up to step {step}; the next evaluation that beats {beats} replaces it"
    )


def _best_file(run_dir: Path) -> Best | None:
    """What best.safetensors says of itself; None when there is none, or it is damaged (it is then replaced)."""
    path = best_path(run_dir)
    if not path.is_file():
        return None
    try:
        found = checkpoint.read(path)
    except CheckpointError:
        return None
    fid = found.meta["info"].get("best", {}).get("fid") if isinstance(found.meta["info"].get("best"), dict) else None
    return Best(found.step, float(fid)) if isinstance(fid, int | float) else None


def load_network(spec: str, device: torch.device) -> FeatureNetwork:
    """`train.eval_features` as `translate evaluate --features` loads it; any failure (an unknown name, a missing
    file, a failed download) is one line naming the setting, raised before the first training step."""
    # ONNX Runtime takes "auto" on a GPU machine (its CUDA provider when installed, else its CPU one).
    where = "cpu" if device.type == "cpu" else str(device) if spec == "inception" else "auto"
    try:
        return load_features(spec, where, progress=True)
    except UsageError as exc:
        raise ConfigError(f"train.eval_features={spec}: {exc}") from None
    except (DatasetError, ExportedModelError) as exc:  # a download that failed, a file the runtime cannot load
        raise type(exc)(f"train.eval_features={spec}: {exc}") from None


@contextlib.contextmanager
def untouched_rng(device: torch.device) -> Iterator[None]:
    """Global RNG states (torch, CUDA, numpy, random) as they were before the block, whatever it draws."""
    saved = np.random.get_state(), random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])


@contextlib.contextmanager
def inference(module: nn.Module) -> Iterator[nn.Module]:
    """The module in eval mode for the block (as the deploy path runs it), then every submodule's mode back."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield module.eval()
    finally:
        for m, training in modes:
            m.training = training


class PeriodicEval:
    """The feature network and the real set's features (both prepared once), and the best FID so far."""

    def __init__(
        self, spec: RecipeSpec, config: Any, data: TrainingData, device: torch.device, console: Console
    ) -> None:
        self.spec, self.config, self.device, self.console = spec, config, device, console
        cfg = config.train
        self.n, self.seed = cfg.eval_n, cfg.seed
        self.direction = spec.default_direction
        self.name = spec.directions[self.direction]  # the generator evaluated (a translator's a2b)
        self.best: Best | None = None
        with untouched_rng(device):
            self.network = load_network(cfg.eval_features, device)
            self.inputs = self._inputs(data) if not spec.is_generator else []
            real = self._real(data)
            self.real = extract(self.network, stacks(real)).features
        self.real_count = len(real)

    # -- the two image sets ---------------------------------------------------------------------------------
    def _samples(self, data: TrainingData, key: str) -> list[np.ndarray]:
        """The first eval_n training samples' `key` images (uint8 (H, W, C)), each image at most once."""
        count = min(self.n, len(data.dataset))  # type: ignore[arg-type]
        return [data.dataset[k][key].numpy().transpose(1, 2, 0) for k in range(count)]

    def _inputs(self, data: TrainingData) -> list[np.ndarray]:
        """What a translator translates: held-out A images, else training A crops."""
        channels = self.config.data.channels
        if data.held_out is not None:
            return load_folder(data.held_out[0], channels, limit=self.n, seed=self.seed, what="held-out A").images
        return self._samples(data, "A")

    def _real(self, data: TrainingData) -> list[np.ndarray]:
        channels = self.config.data.channels
        real = self.config.train.eval_real
        if real is not None:
            return load_folder(Path(real), channels, limit=self.n, seed=self.seed, what="train.eval_real").images
        if self.spec.is_generator:
            return self._samples(data, "image")
        if data.held_out is not None:
            return load_folder(data.held_out[1], channels, limit=self.n, seed=self.seed, what="held-out B").images
        return self._samples(data, "B")

    # -- one evaluation -------------------------------------------------------------------------------------
    def _description(self, module: nn.Module, step: int) -> ModelDescription:
        """What the deploy path would describe this generator as (recipes.restore.load_generator's fields)."""
        config, spec = self.config, self.spec
        return ModelDescription(
            recipe=spec.name,
            kind=spec.kind,
            direction=self.direction,
            channels=config.data.channels or 3,
            image_size=config.data.image_size,
            stride=input_stride(module),
            inputs=spec.generator_inputs(config) if spec.generator_inputs is not None else (),
            source_step=step,
            origin=f"step {step}",
        )

    def _generated(self, module: nn.Module, step: int) -> np.ndarray:
        """Features of eval_n samples, or of the translated inputs, from the deployed generator `module`."""
        model = self._description(module, step)
        if self.spec.is_generator:
            sampler = TorchSampler(module, self.device, model)
            classes = model.class_names
            requested = spread_labels(self.n, len(classes)) if classes else None
            feeds = feeds_for(model, latents(self.n, model.latent.shape[0], self.seed), requested, self.seed)
            batches = (
                to_uint8(sampler({name: value[start : start + BATCH] for name, value in feeds.items()}))
                for start in range(0, self.n, BATCH)
            )
            return extract(self.network, batches).features
        translator = TorchTranslator(module, self.device, model)
        outputs = [image for batch in stacks(self.inputs) for image in run_model(translator, batch)]
        return extract(self.network, stacks(outputs)).features

    def evaluate(self, generators: dict[str, nn.Module], step: int) -> dict[str, Any]:
        """FID and KID of the deployed generator at `step` (`generators`: checkpoint name → what is deployed): the
        metrics.jsonl record. `best` moves to this step when its FID is the lowest so far."""
        start = time.perf_counter()
        with untouched_rng(self.device), inference(generators[self.name]) as module:
            figures = fidelity(self._generated(module, step), self.real, seed=self.seed)
        fid = figures["fid"]
        if math.isfinite(fid) and (self.best is None or fid < self.best.fid):
            self.best = Best(step, fid)
        record = {
            "step": step,
            "eval_step": step,
            "eval_fid": fid,
            "eval_kid": figures["kid_mean"],
            "eval_kid_std": figures["kid_std"],
            **{f"eval_{k}": figures[k] for k in ("precision", "recall") if k in figures},
            "eval_best_fid": self.best.fid if self.best is not None else None,
            "eval_seconds": round(time.perf_counter() - start, 3),
            "time": round(time.time(), 3),
        }
        return record

    def improved(self, record: dict[str, Any]) -> bool:
        """Whether the evaluation `record` is the best so far."""
        return self.best is not None and self.best.step == record["step"]

    def line(self, record: dict[str, Any]) -> str:
        """The one line printed per evaluation."""
        if self.improved(record):
            best = f"new best, saved as {BEST}"
        else:
            best = f"best {self.best.fid:.3f} at step {self.best.step}" if self.best else "no finite FID yet"
        made = f"{self.n} generated" if self.spec.is_generator else f"{len(self.inputs)} translated"
        return (
            f"eval step {record['step']}: FID {record['eval_fid']:.3f}, KID {record['eval_kid']:.5f} "
            f"({self.network.name}, {made} vs {self.real_count} real; {best})"
        )


def save_best(
    run_dir: Path,
    *,
    recipe: str,
    config: Any,
    step: int,
    modules: dict[str, nn.Module],
    record: dict[str, Any],
    info: dict[str, Any],
) -> Path:
    """Write best.safetensors (atomically, like any checkpoint): the generators (and their averages) of `step`,
    with the evaluation under `info.best`; `translate sample/apply --model RUN/best.safetensors` loads it."""
    path = best_path(run_dir)
    figures = {k.removeprefix("eval_"): v for k, v in record.items() if k.startswith("eval_")}
    figures.pop("best_fid", None)
    checkpoint.save(
        path,
        recipe=recipe,
        config=to_dict(config),
        step=step,
        modules=modules,
        info={**info, "best": {**figures, "features": config.train.eval_features, "n": config.train.eval_n}},
    )
    return path


def generator_names(spec: RecipeSpec, ema: bool) -> set[str]:
    """What best.safetensors holds: every generator of the recipe, and their averages when the run keeps them."""
    names = set(spec.directions.values())
    return names | {ema_name(name) for name in names} if ema else names
