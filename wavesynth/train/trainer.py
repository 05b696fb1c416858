"""The training loop: one Trainer for every task (see :class:`wavesynth.train.Task`)."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..errors import WavesynthError
from . import distributed
from .checkpoint import CheckpointDir
from .config import TrainConfig, save_config, to_dict, upgrade_dict
from .data import ResumableSampler
from .ema import EMA
from .logger import RunLogger
from .optim import build_optimizer, build_scheduler, resume_optimizer
from .precision import autocast, describe_precision, resolve_precision
from .rng import get_rng_state, isolated_rng, seed_everything, set_rng_state
from .task import Task

CHECKPOINT_FORMAT = 1
#: ``_diff`` lines of the optimiser's and lr schedule's settings (on resume the config's apply from then on)
_SCHEDULE_LINES = tuple(f"train.{key}:" for key in ("optimizer", "lr", "betas", "eps", "weight_decay",
                                                     "schedule", "warmup_steps", "min_lr", "steps"))
#: Changed settings after which ``val/loss`` measures something else (another sum, data or teacher): the
#: best so far is forgotten on resume, so that ``best.pt`` compares like with like.
_VALIDATION_LINES = ("loss.", "data.", "teacher:")


def _check_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and write a file in it, so that a run folder that cannot hold checkpoints is a
    one-line error before any training rather than a traceback at the first save."""
    probe = run_dir / f".write-test.{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise WavesynthError(f"train.run_dir {str(run_dir)!r} cannot be created or written: "
                             f"{error.strerror or error}") from None


class NonFiniteError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


@dataclass
class TrainResult:
    """How ``fit`` ended."""

    step: int
    interrupted: bool  # stopped early by SIGINT/SIGTERM or ``Trainer.stop()``, after saving a checkpoint
    best_metric: float | None  # best validation loss so far
    checkpoint: Path | None  # the last step checkpoint written (main process only)


class Trainer:
    """Trains ``task``'s model with the settings in ``task.config.train``.

    Run it as one process, or as several with ``torchrun`` (DistributedDataParallel: nccl on CUDA, gloo on
    CPU). ``batch_size`` is the global batch per optimiser step, split evenly over processes and
    ``grad_accum`` micro-batches, so the same config gives the same training whatever the process count.
    With ``resume=True`` the newest checkpoint in ``run_dir`` is loaded and training continues exactly
    where it stopped; without it, a ``run_dir`` that already holds checkpoints is an error. An unreadable
    newest checkpoint (damaged on disk or in a copy) is logged and skipped for the one before it. Settings
    changed since the checkpoint are logged; the optimiser's and the lr schedule's (``train.lr``, ``min_lr``,
    ``warmup_steps``, ``schedule``, ``steps``, ...) apply from the resumed step on, and a model that no
    longer fits the saved weights is a one-line error naming the changed settings.
    ``precision`` is the resolved ``train.precision`` ("fp32" or "bf16"): the loss and validation run in
    its autocast (``wavesynth.train.precision.autocast``), on CPU and CUDA alike; "auto" gives bf16 only if
    every process has native bf16. It is logged at the start and stored in each checkpoint.
    """

    def __init__(self, task: Task, *, resume: bool = False) -> None:
        self.task = task
        self.config: TrainConfig = task.config.train
        cfg = self.config
        self.info = distributed.env_info()
        self.device = distributed.pick_device(cfg.device, self.info)
        per_step = self.info.world_size * cfg.grad_accum
        if cfg.batch_size % per_step:
            raise WavesynthError(f"train.batch_size ({cfg.batch_size}) must be divisible by the number of "
                                 f"processes ({self.info.world_size}) times train.grad_accum "
                                 f"({cfg.grad_accum})")
        self.micro_batch = cfg.batch_size // per_step
        if self.info.is_main:
            _check_writable(Path(cfg.run_dir))
        self.checkpoints = CheckpointDir(cfg.run_dir, cfg.keep_last)
        latest = self.checkpoints.latest()
        if latest is not None and not resume:
            raise WavesynthError(f"{cfg.run_dir} already holds checkpoints; resume the run (--resume) or "
                                 "choose another train.run_dir")
        self._owns_group = distributed.init_process_group(self.info, self.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.precision == "auto" and distributed.any_true([self.precision == "fp32"], self.device)[0]:
            self.precision = "fp32"  # one process without native bf16: all train in fp32, as it does

        seed_everything(cfg.seed)  # the same initial weights on every process
        task.device = self.device
        self.model = task.build_model().to(self.device)
        self.ddp_model = self.model
        if self.info.enabled:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.ema = EMA(self.model, cfg.ema_decay)
        self._build_data()

        self.step = 0
        self.epoch = 0
        self.epoch_batches = 0  # micro-batches this process has taken from the current epoch
        self.best_metric: float | None = None
        self._forgotten_best: tuple[float, int] | None = None  # (metric, step) of a best reset on resume
        self.best_step = 0
        self.nonfinite_streak = 0
        self._signalled = False  # set by the signal handler
        self._stop = False  # agreed by all processes at the end of each step
        self._last_checkpoint: Path | None = None
        self._train_loss = math.nan  # mean over the last log interval, for the validation summary
        resumed = resume and latest is not None
        self._saved_precision: str | None = None  # the precision the checkpoint was trained in
        self._saved_lr = math.nan  # the lr the checkpoint's schedule gave its next step
        unreadable: list[str] = []  # why newer checkpoints than the one resumed could not be read
        changed: list[str] = []
        if resumed:
            latest, state, unreadable = self.checkpoints.load_newest()
            changed = self._load(latest, state)
        if not resumed:
            seed_everything(cfg.seed + self.info.rank)
        self.logger = RunLogger(cfg.run_dir, self.step) if self.info.is_main else None
        if self.logger:
            self.checkpoints.remove_stale_temporaries()
            save_config(task.config, Path(cfg.run_dir) / "config.toml")
            for error in unreadable:
                self._log(f"{error}; falling back to the previous checkpoint")
            self._log(f"resumed from {latest} at step {self.step}" if resumed else
                      f"no checkpoint in {cfg.run_dir}; starting at step 0" if resume else
                      f"starting {type(task).__name__} in {cfg.run_dir}")
            here = resolve_precision(cfg.precision, self.device)
            self._log(describe_precision(cfg.precision, self.device) if here == self.precision else
                      "precision fp32 (train.precision = auto; not every process has native bf16)")
            for line in changed:
                self._log(f"changed since the checkpoint: {line}")
            lr = self.scheduler.get_last_lr()[0]
            rescheduled = any(line.startswith(_SCHEDULE_LINES) for line in changed)
            if resumed and (rescheduled or lr != self._saved_lr):
                self._log(f"the config's lr schedule applies from step {self.step}: lr {lr:.3g} "
                          f"(the checkpoint's {self._saved_lr:.3g})")
            if self._saved_precision not in (None, self.precision):
                self._log(f"changed since the checkpoint: precision {self._saved_precision} -> "
                          f"{self.precision}")
            if self._forgotten_best is not None:
                metric, step = self._forgotten_best
                self._log(f"val/loss now measures something else: the best so far ({metric:.4g} @ {step}) "
                          "is forgotten, and best.pt is rewritten at the next validation")

    # ----------------------------------------------------------------------------------------- data

    def _build_data(self) -> None:
        cfg = self.config
        train_set = self.task.train_data()
        self.sampler = ResumableSampler(train_set, self.info.world_size, self.info.rank, cfg.seed)
        if self.sampler.num_samples < self.micro_batch:
            raise WavesynthError(f"the training set has {len(train_set)} items: too few for a batch of "
                                 f"{self.micro_batch} per process and micro-step")
        self._loader_rng = torch.Generator()  # keeps DataLoader from drawing from the global generator
        self.loader = DataLoader(train_set, self.micro_batch, sampler=self.sampler, drop_last=True,
                                 collate_fn=self.task.collate, num_workers=cfg.num_workers,
                                 pin_memory=self.device.type == "cuda", generator=self._loader_rng)
        self.val_set = self.task.val_data()
        if self.val_set is not None and len(self.val_set) < self.info.world_size:
            raise WavesynthError(f"the validation set has {len(self.val_set)} items, fewer than the "
                                 f"{self.info.world_size} processes")

    def _micro_batches(self) -> Iterator[Any]:
        """Training micro-batches forever, epoch after epoch, from the current data position on."""
        while True:
            self.sampler.set_position(self.epoch, self.epoch_batches * self.micro_batch)
            if hasattr(self.loader.dataset, "set_epoch"):  # e.g. fresh random crops each epoch
                self.loader.dataset.set_epoch(self.epoch)
            self._loader_rng.manual_seed(self.config.seed + 1_000_003 * self.epoch + self.info.rank)
            for batch in self.loader:
                self.epoch_batches += 1
                yield _to_device(batch, self.device)
            self.epoch += 1
            self.epoch_batches = 0

    def _autocast(self):
        """bf16 autocast on CPU or CUDA when the run trains in bf16, else a null context."""
        return autocast(self.precision, self.device)

    # ----------------------------------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        """Train until ``train.steps`` (or a stop request); returns how it ended."""
        cfg = self.config
        handlers = self._install_signal_handlers()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (self.info.is_main and cfg.progress),
                   unit="step", dynamic_ncols=True)
        batches = self._micro_batches()
        window: list[dict[str, float] | None] = []  # metrics of the steps since the last log line
        window_start = time.perf_counter()
        try:
            while self.step < cfg.steps and not self._stop:
                window.append(self._train_step(batches))
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self._log_train(window, time.perf_counter() - window_start, bar)
                    window, window_start = [], time.perf_counter()
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    self._validate()
                if self.step % cfg.save_every == 0 or self.step == cfg.steps or self._stop:
                    self._save()
            interrupted = self._stop and self.step < cfg.steps
            if interrupted:
                self._log(f"stopped at step {self.step}; checkpoint saved; continue with --resume")
        finally:
            bar.close()
            for sig, handler in handlers.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            if self.logger:
                self.logger.close()
            if self._owns_group:
                dist.destroy_process_group()
        return TrainResult(self.step, interrupted, self.best_metric, self._last_checkpoint)

    def _log_train(self, window: list[dict[str, float] | None], seconds: float, bar: tqdm) -> None:
        """Log the mean of each train metric over the steps in ``window`` (None marks a skipped step)."""
        done = [terms for terms in window if terms is not None]
        scalars = {f"train/{k}": sum(t[k] for t in done) / len(done) for k in (done[0] if done else {})}
        scalars["train/samples_per_s"] = self.config.batch_size * len(window) / max(seconds, 1e-9)
        scalars["train/skipped_steps"] = len(window) - len(done)
        self._train_loss = scalars.get("train/loss", math.nan)
        if self.logger:
            self.logger.scalars(self.step, scalars)
            bar.set_postfix(loss=f"{self._train_loss:.4g}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                            samples_per_s=f"{scalars['train/samples_per_s']:.0f}")

    def _train_step(self, batches: Iterator[Any]) -> dict[str, float] | None:
        """One optimiser step over ``grad_accum`` micro-batches; the metrics, or None if it was skipped."""
        cfg = self.config
        self.ddp_model.train()
        lr = self.scheduler.get_last_lr()[0]
        totals: dict[str, Tensor] = {}
        for i in range(cfg.grad_accum):
            batch = next(batches)
            syncing = i == cfg.grad_accum - 1 or not self.info.enabled
            with nullcontext() if syncing else self.ddp_model.no_sync():
                with self._autocast():
                    terms = self.task.loss(self.ddp_model, batch)
                if "loss" not in terms:
                    raise ValueError(f"{type(self.task).__name__}.loss must return a dict with a 'loss' "
                                     f"entry (the total), got keys {sorted(terms)}")
                (terms["loss"] / cfg.grad_accum).backward()
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + value.detach().float() / cfg.grad_accum
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf)
        finite = bool(torch.isfinite(totals["loss"]) and torch.isfinite(grad_norm))
        nonfinite, self._stop = distributed.any_true([not finite, self._signalled], self.device)
        if nonfinite:
            self.nonfinite_streak += 1
        else:
            self.optimizer.step()
            self.ema.update(self.model)
            self.nonfinite_streak = 0
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        if not nonfinite:
            return {**{k: v.item() for k, v in totals.items()}, "grad_norm": grad_norm.item(), "lr": lr}
        self._log(f"step {self.step}: loss or gradient not finite, update skipped "
                  f"({self.nonfinite_streak} in a row)")
        if self.nonfinite_streak >= cfg.max_nonfinite:
            raise NonFiniteError(
                f"stopped at step {self.step}: the loss or its gradient was not finite for "
                f"{self.nonfinite_streak} steps in a row; lower train.lr or train.grad_clip or check the "
                f"data, then resume from the last checkpoint in {cfg.run_dir}")
        return None

    @torch.no_grad()
    def _validate(self) -> None:
        """Average the task's validation metrics over the whole validation set, with the EMA weights."""
        if self.val_set is None:
            return
        cfg = self.config
        size = cfg.val_batch_size or self.micro_batch
        shard = Subset(self.val_set, range(self.info.rank, len(self.val_set), self.info.world_size))
        loader = DataLoader(shard, size, collate_fn=self.task.collate, num_workers=cfg.num_workers)
        sums: dict[str, float] = {}
        with isolated_rng(cfg.seed + self.info.rank), self._autocast():
            for i, batch in enumerate(loader):
                n = min(size, len(shard) - i * size)
                batch = _to_device(batch, self.device)
                for name, value in self.task.validate(self.ema.module, batch).items():
                    sums[name] = sums.get(name, 0.0) + float(value) * n
        names = sorted(sums)
        if "loss" not in names:
            raise ValueError(f"{type(self.task).__name__}.validate must return a dict with a 'loss' entry")
        totals = distributed.all_sum([sums[k] for k in names], self.device)
        metrics = {k: total / len(self.val_set) for k, total in zip(names, totals, strict=True)}
        improved = self.best_metric is None or metrics["loss"] < self.best_metric
        if improved:
            self.best_metric, self.best_step = metrics["loss"], self.step
        if self.logger:
            with isolated_rng(cfg.seed):
                samples = self.task.samples(self.ema.module)
            self.logger.samples(self.step, samples)
            self.logger.scalars(self.step, {f"val/{k}": v for k, v in metrics.items()})
            others = "".join(f" | {k} {v:.4g}" for k, v in metrics.items() if k != "loss")
            if not math.isnan(self._train_loss):
                others += f" | train loss {self._train_loss:.4g}"
            self._log(f"step {self.step}/{cfg.steps} | val loss {metrics['loss']:.4g} "
                      f"(best {self.best_metric:.4g} @ {self.best_step}){others} "
                      f"| lr {self.scheduler.get_last_lr()[0]:.2e}")
        if improved:
            self._save(best=True)

    # ------------------------------------------------------------------------------------ checkpoints

    def _state(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, schedule, EMA, RNGs of every process,
        data position, and the config (so the checkpoint alone rebuilds the model)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "config": to_dict(self.task.config),
            "config_class": type(self.task.config).__name__,  # what "config" is, e.g. "TeacherConfig"
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict(),
            "rng": rng,
            # position in the epoch as a global sample count, so it survives a change of process count
            "data": {"epoch": self.epoch,
                     "samples": self.epoch_batches * self.micro_batch * self.info.world_size},
            "best": {"metric": self.best_metric, "step": self.best_step},
            "nonfinite_streak": self.nonfinite_streak,
            "precision": self.precision,  # resolved: what "auto" gave on the machine that trained
        }

    def _save(self, best: bool = False) -> None:
        rng = distributed.all_gather(get_rng_state())  # every process takes part; only rank 0 writes
        if self.info.is_main:
            path = self.checkpoints.save(self._state(rng), best=best)
            if not best:
                self._last_checkpoint = path

    def _load(self, path: Path, state: dict[str, Any]) -> list[str]:
        """Restore ``state``, read from ``path``; returns the settings that differ from the saved config
        (its old keys, such as ``train.bf16``, mapped to new ones first)."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise WavesynthError(f"{path} is not a wavesynth training checkpoint of format "
                                 f"{CHECKPOINT_FORMAT}")
        changed = _diff(upgrade_dict(type(self.task.config), state["config"]), to_dict(self.task.config))
        _check_weights_fit(self.model, state["model"], path, changed)
        if state["step"] > self.config.steps:
            raise WavesynthError(f"train.steps ({self.config.steps}) is below the step of {path} "
                                 f"({state['step']}); resume with train.steps >= {state['step']}")
        self.model.load_state_dict(state["model"])
        self._saved_lr = resume_optimizer(self.optimizer, self.scheduler, state["optimizer"],
                                          state["scheduler"], self.config)
        self.ema.load_state_dict(state["ema"])
        self.step = state["step"]
        self.epoch = state["data"]["epoch"]
        self.epoch_batches = state["data"]["samples"] // self.info.world_size // self.micro_batch
        self.best_metric, self.best_step = state["best"]["metric"], state["best"]["step"]
        if self.best_metric is not None and any(line.startswith(_VALIDATION_LINES) for line in changed):
            self._forgotten_best = (self.best_metric, self.best_step)
            self.best_metric, self.best_step = None, 0
        self.nonfinite_streak = state["nonfinite_streak"]
        if self.info.rank < len(state["rng"]):
            set_rng_state(state["rng"][self.info.rank])
        else:  # more processes than when the checkpoint was written
            seed_everything(self.config.seed + self.info.rank + self.step)
        self._saved_precision = state.get("precision")  # None in checkpoints from before it was stored
        return changed

    # ------------------------------------------------------------------------------------- signals

    def stop(self) -> None:
        """Ask for a graceful stop: finish the current step, save a checkpoint, return from ``fit``."""
        self._signalled = True

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGINT and SIGTERM stop gracefully; another one more than a second later aborts at once.

        (A Ctrl-C under torchrun reaches each worker twice within milliseconds: from the terminal and
        forwarded by torchrun. That must not abort.)"""
        if threading.current_thread() is not threading.main_thread():
            return {}
        first: list[float] = []

        def handle(signum: int, frame: Any) -> None:
            if first and time.monotonic() - first[0] > 1.0:
                raise KeyboardInterrupt
            if first:
                return
            first.append(time.monotonic())
            self._signalled = True
            if self.info.is_main:
                tqdm.write(f"{signal.Signals(signum).name}: stopping after this step (again to abort)")

        return {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _log(self, text: str) -> None:
        if self.logger:
            self.logger.line(text)


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors inside nested dicts, lists and tuples to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _check_weights_fit(model: torch.nn.Module, weights: dict[str, Tensor], path: Path,
                       changed: list[str]) -> None:
    """A one-line ValueError, naming the changed model settings, when ``weights`` do not fit ``model``."""
    expected = model.state_dict()
    misfits = sorted(k for k in expected.keys() | weights.keys()
                     if k not in expected or k not in weights or expected[k].shape != weights[k].shape)
    if not misfits:
        return
    named = ([line for line in changed if line.startswith("model.")]
             or [line for line in changed if not line.startswith("train.")])
    because = f"changed since the checkpoint: {'; '.join(named)}" if named else "no setting changed"
    raise WavesynthError(f"{path} does not fit the model ({because}; weights "
                         f"{', '.join(misfits[:3])}{', ...' if len(misfits) > 3 else ''} differ); resume "
                         "with the checkpoint's model settings, or train the new model in another "
                         "train.run_dir")


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Lines ``key: old -> new`` for every setting that differs between two config dicts."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines
