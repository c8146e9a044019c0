"""The training loop every recipe shares: steps, logs, curves, previews, checkpoints, exact resume, signals, NaN
guard."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from translate.config import to_dict
from translate.core import checkpoint
from translate.core.ema import GeneratorEMA
from translate.core.engine import Engine
from translate.data.folders import CounterSampler, default_num_workers, to_model_range
from translate.errors import ConfigError
from translate.files import atomic_write
from translate.imageio import label_rows, make_grid, save_image, to_uint8
from translate.recipes.base import Phase, Recipe, TrainingData, phase_at, phase_starts, single_phase
from translate.training.curves import TensorBoard, losses_of, plot_losses, tensorboard_wanted
from translate.training.periodic_eval import (
    PeriodicEval,
    best_after_resume,
    generator_names,
    save_best,
    stale_best_note,
)
from translate.training.progress import training_progress


class TrainingStopped(RuntimeError):
    """Training ended early; `interrupted` tells a user stop (resumable) from a failure."""

    def __init__(self, message: str, *, interrupted: bool) -> None:
        super().__init__(message)
        self.interrupted = interrupted


class Trainer:
    """Runs `recipe.train_step` from a start step to `config.train.steps`, writing everything into `run_dir`.

    Training runs through `phases` (default: one, at the config's image size and batch size); where a phase
    starts, the data pipeline is rebuilt at its batch and image size, and the sample counter carries on.
    """

    def __init__(
        self,
        recipe: Recipe,
        data: TrainingData,
        engine: Engine,
        run_dir: Path,
        *,
        info: dict[str, Any] | None = None,
        console: Console | None = None,
        progress: bool = True,
        phases: Sequence[Phase] | None = None,
    ) -> None:
        self.recipe, self.data, self.engine, self.run_dir = recipe, data, engine, run_dir
        self.config = recipe.config
        self.phases = tuple(phases) if phases is not None else single_phase(self.config)
        self._starts = phase_starts(self.phases, self.config.train.batch_size, engine.world_size)
        self._check_phases()
        self.info = info or {}
        self.console = console or Console(stderr=True)
        self.progress = progress
        self._stop_signal: str | None = None
        self._last_saved: Path | None = None
        self._resumed_samples = (0, 0)  # (step, sample counter) the run started from
        self.ema = self._ema()
        self._ema_from_generators = True  # until a checkpoint with averages is restored
        self._norms_measured_at = -1  # the step at which the averages' batch-norm statistics were last measured
        # Built (feature network, real features) before the first step, so a bad setting or a failed download stops
        # the run at once rather than at the first evaluation.
        self.evaluation = self._evaluation()

    def _ema(self) -> GeneratorEMA | None:
        """The generators' moving average when train.ema_half_life is set (translate.core.ema)."""
        from translate.recipes import get_recipe

        cfg = self.config.train
        if not cfg.ema_half_life:
            return None
        names = set(get_recipe(self.recipe.name).directions.values())
        return GeneratorEMA(self._generators(names), cfg.ema_half_life, cfg.ema_rampup or None)

    def _evaluation(self) -> PeriodicEval | None:
        """FID/KID every train.eval_every steps (translate.training.periodic_eval); rank 0 alone evaluates."""
        from translate.recipes import get_recipe

        if not self.config.train.eval_every or not self.engine.is_main:
            return None
        spec = get_recipe(self.recipe.name)
        return PeriodicEval(spec, self.config, self.data, self.engine.device, self.console)

    def _generators(self, names: set[str] | None = None) -> dict[str, torch.nn.Module]:
        """The recipe's generator modules (unwrapped) by checkpoint name."""
        names = names if names is not None else set(self.ema.averages) if self.ema else set()
        return {name: module for name, module in self.recipe.modules().items() if name in names}

    def _measure_norms(self, step: int) -> None:
        """Before the averages are used at `step`: their batch-norm statistics measured on their own samples
        (GeneratorEMA.measure_norms), for generators fed by a prior. The inputs come from a generator of their own,
        seeded alike every time, so training's random streams and exact resume are untouched."""
        from translate.deploy.sampling import draw
        from translate.recipes import get_recipe

        spec = get_recipe(self.recipe.name)
        if self.ema is None or spec.generator_inputs is None or step == self._norms_measured_at:
            return
        inputs = spec.generator_inputs(self.config)
        rng = np.random.default_rng(self.config.train.seed)
        device = self.engine.device

        def feeds(n: int) -> dict[str, Tensor]:
            return {item.name: torch.from_numpy(draw(item, n, rng)).to(device) for item in inputs}

        for name in self.ema.averages:
            # At least 2 per batch: batch norm cannot measure a spread on one sample.
            self.ema.measure_norms(name, feeds, max(2, self.config.train.batch_size))
        self._norms_measured_at = step

    def _modules(self) -> dict[str, torch.nn.Module]:
        """What a checkpoint holds: the recipe's networks and the generators' averages."""
        return {**self.recipe.modules(), **(self.ema.modules() if self.ema else {})}

    # -- phases --------------------------------------------------------------------------------------------
    def _check_phases(self) -> None:
        """Refuse, before training, phases that stop short of train.steps or need sizes the data cannot give."""
        steps, size = self.config.train.steps, self.config.data.image_size
        last = self.phases[-1].length(self.config.train.batch_size, self.engine.world_size)
        if last is not None and self._starts[-1] + last < steps:
            raise ConfigError(
                f"the phases end after {self._starts[-1] + last} steps but train.steps is {steps}: "
                "lower train.steps, or make the last phase open-ended"
            )
        for index, phase in enumerate(self.phases):
            if phase.image_size not in (None, size) and self.data.at_size is None:
                raise ConfigError(
                    f"phase {index} trains at {phase.image_size} px, but this recipe's data comes at "
                    f"data.image_size ({size} px) only: its make_data sets no at_size"
                )

    def phase(self, step: int) -> int:
        """The index of the phase that (0-based) step `step` trains in."""
        return phase_at(step, self._starts)

    def _batch_size(self, phase: int) -> int:
        """Samples one process loads per step of `phase` (WGAN-GP's critic takes several batches per step)."""
        return (self.phases[phase].batch_size or self.config.train.batch_size) * self.recipe.batches_per_step

    def samples_per_step(self, phase: int) -> int:
        """Data samples one step of `phase` consumes over all processes (the sample counter's advance)."""
        return self._batch_size(phase) * self.engine.world_size

    def _dataset(self, phase: int) -> Dataset:
        """The training samples at `phase`'s image size."""
        size = self.phases[phase].image_size
        if size is None or size == self.config.data.image_size:
            return self.data.dataset
        assert self.data.at_size is not None  # refused in _check_phases
        return self.data.at_size(size)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def save(self, step: int) -> Path:
        """Write a checkpoint (rank 0 only: every rank holds the same weights)."""
        path = checkpoint.checkpoint_path(self.run_dir, step)
        self._last_saved = path
        if not self.engine.is_main:
            return path
        self._measure_norms(step)
        optimizers = self.recipe.optimizers()
        checkpoint.save(
            path,
            recipe=self.recipe.name,
            config=to_dict(self.config),
            step=step,
            modules=self._modules(),
            optimizers=optimizers,
            extra=self.recipe.extra_state(),
            rng=self.engine.rng_state(),
            info={
                **self.info,
                **self._eval_info(),
                "samples": self._samples(step),
                "scalers": self.engine.scaler_state(optimizers),
            },
        )
        keep = self.config.train.keep_checkpoints
        if keep:
            for old in checkpoint.list_checkpoints(self.run_dir)[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def restore(self, ckpt: checkpoint.Checkpoint) -> int:
        """Load a checkpoint into the recipe; returns the step to continue from."""
        optimizers = self.recipe.optimizers()
        extra, rng = checkpoint.restore(ckpt, modules=self._resumable(ckpt), optimizers=optimizers)
        self.recipe.load_extra_state(extra)
        self.engine.load_rng_state(rng)
        if not self.engine.is_main:  # the saved RNG state is rank 0's; the others draw their own noise
            self.engine.seed(self.config.train.seed + ckpt.step)
        self.engine.load_scaler_state(ckpt.meta["info"].get("scalers", {}), optimizers)
        self._last_saved = ckpt.path
        if self.evaluation is not None:
            self._restore_best(ckpt)
        # Runs saved before the counter was recorded consumed step × batch samples (one process).
        self._resumed_samples = (ckpt.step, ckpt.meta["info"].get("samples", ckpt.step * self.config.train.batch_size))
        return ckpt.step

    def _eval_info(self) -> dict[str, Any]:
        """What a checkpoint records of the evaluations: the best FID so far, which a resumed run compares with."""
        best = self.evaluation.best if self.evaluation is not None else None
        return {"eval_best": best.to_info()} if best is not None else {}

    def _restore_best(self, ckpt: checkpoint.Checkpoint) -> None:
        assert self.evaluation is not None
        self.evaluation.best = best = best_after_resume(ckpt.meta["info"], self.run_dir, ckpt.step)
        note = stale_best_note(self.run_dir, best, ckpt.step)
        if note is not None:
            self.console.print(note, highlight=False, soft_wrap=True)

    def _resumable(self, ckpt: checkpoint.Checkpoint) -> dict[str, torch.nn.Module]:
        """The modules to load on resume; averages a run saved without EMA start from its generators."""
        stored = set(ckpt.meta.get("modules", []))
        modules = self._modules()
        averages = self.ema.modules() if self.ema else {}
        missing = [name for name in averages if name not in stored]
        self._ema_from_generators = bool(missing)
        if missing:
            self.console.print(f"note: {ckpt.path.name} holds no generator average; EMA starts from its generators")
        return {name: module for name, module in modules.items() if name not in missing}

    def _samples(self, step: int) -> int:
        """The sample counter after `step` steps: where a resumed run's data stream continues.

        Each step since the run's start adds its phase's samples per step (3 steps of batch 4, then 2 of batch 2:
        16 after step 5); the steps before a resume point count as the checkpoint says, whatever the number of
        processes that ran them.
        """
        start_step, samples = self._resumed_samples
        ends = (*self._starts[1:], step)
        for phase, (first, end) in enumerate(zip(self._starts, ends, strict=True)):
            samples += max(0, min(step, end) - max(start_step, first)) * self.samples_per_step(phase)
        return samples

    # -- outputs -------------------------------------------------------------------------------------------
    def write_preview(self, step: int) -> np.ndarray:
        """Write `previews/step_N.png`, one labelled row per preview row of the recipe; returns the grid."""
        inputs = self.engine.to_device(self.data.preview)
        self._measure_norms(step)
        with self.ema.swapped_in(self._generators()) if self.ema else contextlib.nullcontext():
            rows = self.recipe.preview(inputs)  # (label, (N, C, H, W)) per row: the averages' samples
        columns, height = rows[0][1].shape[0], rows[0][1].shape[2]
        images = to_uint8(torch.cat([r.float().cpu() for _, r in rows]).numpy())
        grid = make_grid(images, ncols=columns)
        labels = [label for label, _ in rows]
        if any(labels):
            grid = label_rows(grid, labels, height)
        save_image(self.run_dir / "previews" / f"step_{step:08d}.png", grid)
        return grid

    def _log_record(self, step: int, sums: dict[str, Tensor], window_steps: int, elapsed: float) -> dict[str, Any]:
        """One metrics.jsonl record: the window's mean losses, the learning rates, speed, samples and time."""
        in_phase = {"phase": self.phase(step - 1)} if len(self.phases) > 1 else {}
        losses = {k: float(v) / window_steps for k, v in sums.items()}
        # The rates train_step set for this step (a pure function of the step), one per optimiser.
        rates = {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.recipe.optimizers().items()}
        return {
            "step": step,
            **in_phase,
            **losses,
            **rates,
            "it_s": window_steps / max(elapsed, 1e-9),
            "images": self._samples(step),  # training samples drawn so far, by every process together
            "time": round(time.time(), 3),  # wall clock (Unix seconds), as TensorBoard's walltime
        }

    def _refresh_curves(self, tensorboard: TensorBoard | None, step: int, grid: np.ndarray) -> None:
        """At a preview: redraw losses.png from the whole log, and send the grid to TensorBoard."""
        title = f"{self.recipe.name}: {self.run_dir.name}, step {step}"
        plot_losses(self.run_dir / "metrics.jsonl", self.run_dir / "losses.png", self.recipe.loss_groups, title)
        if tensorboard is not None:
            tensorboard.image(step, grid)

    def _evaluate(self, step: int, log: Any, tensorboard: TensorBoard | None) -> float:
        """One evaluation (rank 0): log it, print its line, keep best.safetensors; returns the seconds it took."""
        assert self.evaluation is not None
        from translate.recipes import get_recipe

        started = time.perf_counter()
        spec = get_recipe(self.recipe.name)
        live = self._generators(set(spec.directions.values()))
        self._measure_norms(step)
        deployed = dict(self.ema.averages) if self.ema is not None else live  # what export/apply/sample would use
        record = self.evaluation.evaluate(deployed, step)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if tensorboard is not None:
            tensorboard.scalars(record)
        if self.evaluation.improved(record):
            modules = self._modules()
            names = generator_names(spec, self.ema is not None)
            save_best(
                self.run_dir,
                recipe=self.recipe.name,
                config=self.config,
                step=step,
                modules={name: module for name, module in modules.items() if name in names},
                record=record,
                info=self.info,
            )
        self.console.print(self.evaluation.line(record), highlight=False, soft_wrap=True)
        title = f"{self.recipe.name}: {self.run_dir.name}, step {step}"
        plot_losses(self.run_dir / "metrics.jsonl", self.run_dir / "losses.png", self.recipe.loss_groups, title)
        return time.perf_counter() - started

    # -- loop ----------------------------------------------------------------------------------------------
    def _batches(self, start_step: int, total: int) -> Iterator[dict[str, Tensor]]:
        """One batch per step from `start_step` to `total`, each phase's from a loader of its own."""
        step, ends = start_step, (*self._starts[1:], total)
        while step < total:
            end = min(total, ends[self.phase(step)])
            batches = self._loader(step)
            for _ in range(step, end):
                yield next(batches)
            del batches  # its workers exit before the next phase's start
            step = end

    def _loader(self, start_step: int) -> Iterator[dict[str, Tensor]]:
        """The batches of `start_step`'s phase (its batch and image size), from that step's sample counter on."""
        phase = self.phase(start_step)
        batch_size = self._batch_size(phase)
        workers = self.config.data.num_workers
        processes = self.engine.dist.local_world_size if self.engine.dist else 1
        workers = default_num_workers(processes) if workers is None else workers
        # Each rank takes every world_size-th sample of the one global stream, so together the ranks consume
        # a contiguous range per step, whatever their number (and a resume under another number continues it).
        sampler = CounterSampler(self._samples(start_step) + self.engine.rank, stride=self.engine.world_size)
        loader = DataLoader(
            self._dataset(phase),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.engine.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            # Its own generator: creating the iterator would otherwise draw from (and so shift) the global RNG,
            # and a resumed run creates one more iterator than an uninterrupted one.
            generator=torch.Generator().manual_seed(self.config.train.seed),
            worker_init_fn=_ignore_interrupts,
        )
        return iter(loader)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """First Ctrl-C/SIGTERM: finish the current step, save, stop. A second Ctrl-C aborts at once."""

        def handler(signum: int, frame: object) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            again = " (Ctrl-C again to abort)" if signum == signal.SIGINT else ""
            self.console.print(f"\n{self._stop_signal}: saving a checkpoint after this step{again}")

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signal handling to the caller
            pass
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def fit(self, start_step: int = 0, *, stop_at: int | None = None) -> Path:
        """Train to `config.train.steps` (or `stop_at`); returns the last checkpoint written."""
        cfg = self.config.train
        total = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        writer = self.engine.is_main  # under DDP only rank 0 writes files and draws progress
        distributed = self.engine.world_size > 1
        # Reading losses back waits for the device (and across processes is a collective), so on GPUs and under
        # DDP they are read only at log steps: no per-step host synchronisation. A lone CPU process checks every step.
        check_every = 1 if self.engine.device.type == "cpu" and not distributed else cfg.log_every
        sums: dict[str, Tensor] = {}
        window_start, window_steps = time.perf_counter(), 0
        shown: list[str] = []
        rate = ""
        if start_step == 0:  # noise, labels, dropout: seeded here; a resumed run has restored its saved RNG state
            self.engine.seed(cfg.seed)
        if self.ema is not None and self._ema_from_generators:
            self.ema.reset(self._generators())  # from the weights training starts with (fresh, --init or resumed)
        log_path = self.run_dir / "metrics.jsonl"
        if writer:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if start_step:  # steps after the checkpoint that a crash had logged are logged again from here on
                _trim_log(log_path, start_step)
        tensorboard = TensorBoard(self.run_dir, start_step) if writer and tensorboard_wanted(cfg.tensorboard) else None
        with (
            self.engine.backend_settings(),
            self._signals(),
            training_progress(self.console, enabled=self.progress and writer) as bar,
            open(log_path, "a", encoding="utf-8") if writer else contextlib.nullcontext() as log,
            contextlib.closing(tensorboard) if tensorboard is not None else contextlib.nullcontext(),
            # Closed here, so the loader's worker processes stop when training does, not at interpreter exit (where
            # joining them could hang).
            contextlib.closing(self._batches(start_step, total)) as batches,
        ):
            task = bar.add_task("train", total=cfg.steps, completed=start_step, losses=[], rate="")
            for step in range(start_step, total):
                batch = to_model_range(self.engine.to_device(next(batches)))  # uint8 -> [-1, 1] on the device
                metrics = self.recipe.train_step(batch, step)
                done = step + 1
                if self.ema is not None:  # images per generator update: a critic's extra batches do not count
                    per = self.recipe.batches_per_step
                    batch_images = self.samples_per_step(self.phase(step)) // per
                    self.ema.update(self._generators(), batch_images, self._samples(done) // per)
                for key, value in metrics.items():
                    value = value.float()  # bf16/fp16 losses would lose digits when summed over a window
                    sums[key] = sums[key] + value if key in sums else value
                window_steps += 1
                # A phase's last step also logs, so that every metrics.jsonl record belongs to one phase.
                phase_ends = done in self._starts
                checking = done % check_every == 0 or done == total or phase_ends
                if checking:
                    sums = self.engine.all_mean(sums)  # every rank sees the same values and stops together
                    self._check_finite(sums, done, window_steps if check_every > 1 else 1)
                if done % cfg.log_every == 0 or done == total or phase_ends:
                    record = self._log_record(done, sums, window_steps, time.perf_counter() - window_start)
                    rate = f"{record['it_s']:.2f} it/s"
                    shown = [f"{k} {v:.3f}" for k, v in losses_of(record).items()]
                    if writer:
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                        if tensorboard is not None:
                            tensorboard.scalars(record)
                        if not bar.live.is_started:  # no terminal: one plain line per log step instead of a bar
                            line = f"step {done}/{cfg.steps} {' '.join(shown)} ({rate})"
                            self.console.print(line, highlight=False, soft_wrap=True)
                    sums, window_start, window_steps = {}, time.perf_counter(), 0
                bar.update(task, completed=done, losses=shown, rate=rate)
                # A phase's last step also previews: the last picture at each resolution of a progressive run.
                if writer and (done % cfg.preview_every == 0 or done == total or phase_ends):
                    self._refresh_curves(tensorboard, done, self.write_preview(done))
                # At the run's own last step, not at an early stop_at, so a split run evaluates where a whole one does.
                if self.evaluation is not None and (done % cfg.eval_every == 0 or done == cfg.steps):
                    window_start += self._evaluate(done, log, tensorboard)  # its time is not the next window's it/s
                # Under DDP a stop request is shared at check steps, so that every rank stops after the same step.
                stopping = self._stop_signal is not None
                if distributed:
                    stopping = checking and self.engine.any_rank(stopping)
                if done % cfg.checkpoint_every == 0 or done == total or stopping:
                    self.save(done)
                if stopping:
                    raise TrainingStopped(
                        f"stopped by {self._stop_signal or 'another rank'} at step {done}; checkpoint "
                        f"{self._last_saved}. Continue with: translate train --out {self.run_dir.parent} "
                        f"--name {self.run_dir.name} --resume",
                        interrupted=True,
                    )
        assert self._last_saved is not None
        return self._last_saved

    def _check_finite(self, sums: dict[str, Tensor], step: int, window: int) -> None:
        bad = [k for k, v in sums.items() if not math.isfinite(float(v))]
        if bad:
            where = f"at step {step}" if window == 1 else f"between steps {step - window + 1} and {step}"
            last = f"last good checkpoint: {self._last_saved}" if self._last_saved else "no checkpoint was saved yet"
            raise TrainingStopped(
                f"loss {', '.join(bad)} became non-finite {where}; {last}. "
                "Lower the learning rate (--set lr=...) and resume from it, or restart with another --seed.",
                interrupted=False,
            )


def _trim_log(path: Path, step: int) -> None:
    """Rewrite the metrics log, if need be, with only the records of steps up to `step`.

    Only whole records are kept: a line that is not a newline-ended JSON object with an integer step is a write that
    a crash cut short (or such a fragment joined with the record appended after it) and is dropped. The trainer is
    the log's only writer, so that loses nothing a reader could use.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except FileNotFoundError:
        return
    kept = [line for line in lines if (logged := _logged_step(line)) is not None and logged <= step]
    if kept != lines:
        atomic_write(path, "".join(kept).encode())


def _logged_step(line: str) -> int | None:
    if not line.endswith("\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _ignore_interrupts(worker_id: int) -> None:
    # Ctrl-C (and `timeout`, systemd, batch schedulers with SIGTERM) signal the whole process group; workers leave
    # it to the main process, which saves and then stops them. A worker dying first would make the main process
    # fail before it could save.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
