"""A tiny regression task for the training-engine tests, checkpoint comparisons, and a script entry point
for subprocess runs:

    python tests/toy_task.py [--resume] [--slow-save] key=value ...
"""

from __future__ import annotations

import csv
import io
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wavesynth.train import (
    Audio,
    CheckpointDir,
    Image,
    Task,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_config,
)

TOY_SCRIPT = Path(__file__)  # run as a script: python TOY_SCRIPT key=value ...


@dataclass
class ToyModelConfig:
    hidden: int = 8
    dropout: float = 0.0


@dataclass
class ToyDataConfig:
    size: int = 36
    val_size: int = 10
    random: bool = False  # draw from numpy, python and torch generators (checks RNG state on resume)
    nan_calls: list[int] = field(default_factory=list)  # loss calls (0-based) that return NaN
    sleep: float = 0.0  # seconds per loss call, to make a run slow enough to interrupt


@dataclass
class ToyConfig:
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    data: ToyDataConfig = field(default_factory=ToyDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=12, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=3, val_every=4, save_every=4,
        log_every=2, ema_decay=0.9, progress=False))


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, size: int, seed: int, jitter: bool) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 4, generator=g)
        w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        self.y = self.x @ w + 0.1 * torch.randn(size, 1, generator=g)
        self.jitter = jitter

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.jitter:
            x = x + torch.from_numpy(np.random.normal(0, 0.01, 4).astype(np.float32))
        return x, self.y[i]


class ToyTask(Task):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        self.calls = 0
        self.on_loss = None  # optional hook called with the call number, for tests

    def build_model(self) -> nn.Module:
        m = self.config.model
        return nn.Sequential(nn.Linear(4, m.hidden), nn.Tanh(), nn.Dropout(m.dropout), nn.Linear(m.hidden, 1))

    def train_data(self) -> ToyDataset:
        return ToyDataset(self.config.data.size, 1, self.config.data.random)

    def val_data(self) -> ToyDataset | None:
        return ToyDataset(self.config.data.val_size, 2, False) if self.config.data.val_size else None

    def loss(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        d = self.config.data
        time.sleep(d.sleep)
        x, y = batch
        mse = (model(x) - y).pow(2).mean()
        if d.random:
            mse = mse * (1 + 0.01 * random.random()) + 0.01 * torch.randn(()).abs()
        if model.training:  # count training calls only
            if self.on_loss is not None:
                self.on_loss(self.calls)
            if self.calls in d.nan_calls:
                mse = mse * math.nan
            self.calls += 1
        weight_norm = sum(p.pow(2).sum() for p in model.parameters())
        return {"loss": mse + 1e-4 * weight_norm, "mse": mse}

    def samples(self, model: nn.Module) -> dict[str, Audio | Image]:
        t = torch.linspace(0, 1, 800)
        tone = Audio(0.5 * torch.sin(2 * math.pi * 440 * t), sample_rate=8000)
        return {"tone": tone, "grid": Image(torch.rand(1, 8, 8))}


def metrics_rows(run) -> list[list[str]]:
    """The rows of a run's metrics.csv (step, name, value), header excluded."""
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.reader(file))[1:]


def toy_config(tmp_path, *overrides: str) -> ToyConfig:
    return load_config(ToyConfig, overrides=[f"train.run_dir={tmp_path / 'run'}", *overrides])


def final_state(run: Path) -> dict:
    """The newest checkpoint of a run."""
    return load_checkpoint(CheckpointDir(run).latest())


def assert_same_state(a: dict, b: dict) -> None:
    """Two checkpoints hold identical model, optimizer, EMA and scheduler states."""
    for part in ("model", "optimizer", "ema", "scheduler"):
        assert _flatten(a[part]).keys() == _flatten(b[part]).keys()
        for key, value in _flatten(a[part]).items():
            other = _flatten(b[part])[key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other), f"{part}.{key} differs"
            else:
                assert value == other, f"{part}.{key} differs"


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k2: v2 for k, v in tree.items() for k2, v2 in _flatten(v, f"{prefix}{k}.").items()}
    if isinstance(tree, list | tuple):
        return {k2: v2 for i, v in enumerate(tree) for k2, v2 in _flatten(v, f"{prefix}{i}.").items()}
    return {prefix: tree}


def _slow_save(obj, file) -> None:
    """torch.save that writes its bytes in slow chunks, so a test can kill the process mid-write."""
    buffer = io.BytesIO()
    _real_save(obj, buffer)
    data = buffer.getvalue()
    for i in range(0, len(data), len(data) // 20 + 1):
        file.write(data[i:i + len(data) // 20 + 1])
        file.flush()
        time.sleep(0.05)


_real_save = torch.save


def main(argv: list[str]) -> None:
    flags = {a for a in argv if a.startswith("--")}
    if "--slow-save" in flags:
        torch.save = _slow_save
    config = load_config(ToyConfig, overrides=[a for a in argv if not a.startswith("--")])
    result = Trainer(ToyTask(config), resume="--resume" in flags).fit()
    print(f"finished step={result.step} interrupted={result.interrupted}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
