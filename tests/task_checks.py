"""Shared settings and helpers for the tiny teacher and student training runs (TeacherTask, StudentTask)."""

from __future__ import annotations

import csv
from pathlib import Path

# A tiny teacher: command-line overrides for `wavesynth train teacher`.
TINY = [
    "model.layers=2", "model.cycles=1", "model.residual_channels=8", "model.gate_channels=8",
    "model.skip_channels=8", "data.segment_frames=4", "data.val_segment_frames=8",
    "data.sample_seconds=0.05", "train.batch_size=2", "train.warmup_steps=0", "train.lr=1e-2",
    "train.progress=false", "train.log_every=1",
]


def write_config(path: Path, cache: Path, run: Path) -> Path:
    """A config file naming the cache and the run folder."""
    path.write_text(f'[data]\ncaches = ["{cache}"]\n\n[train]\nrun_dir = "{run}"\n')
    return path


def val_metrics(run: Path) -> dict[int, dict[str, float]]:
    """{step: {name: value}} of the val/ metrics in a run's metrics.csv."""
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.reader(file))[1:]
    out: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        if name.startswith("val/"):
            out.setdefault(int(step), {})[name[4:]] = float(value)
    return out


# A tiny student: command-line overrides for `wavesynth train student`.
STUDENT = [
    "model.flow_layers=[2, 2]", "model.flow_cycles=[1, 1]", "model.channels=8", "model.gate_channels=8",
    "data.segment_frames=4", "data.val_segment_frames=8", "data.sample_seconds=0.05", "train.batch_size=2",
    "train.warmup_steps=0", "train.lr=1e-2", "train.progress=false", "train.log_every=1", "loss.samples=2",
    "loss.spectral_weight=1", "loss.spectral_ffts=[64, 256]", "loss.mel_weight=1",
]
