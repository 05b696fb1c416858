"""Shared helpers for the ParallelWaveNet student tests: a tiny student and random inputs."""

from __future__ import annotations

import torch

from wavesynth.parallel import ParallelWaveNet, StudentConfig

HOP = 4


def tiny_config(**overrides) -> StudentConfig:
    """2 flows of 2 and 3 layers, 8/8 channels, 5 mels, hop 4 (receptive field 7 + 15 = 22 samples)."""
    values = dict(flow_layers=(2, 3), flow_cycles=(1, 1), channels=8, gate_channels=8, n_mels=5,
                  hop_length=HOP, upsample_scales=(2, 2))
    values.update(overrides)
    return StudentConfig(**values)


def tiny_student(dtype: torch.dtype = torch.float64, **overrides) -> ParallelWaveNet:
    """A tiny student whose flows are far from the identity (output weights as large as the others)."""
    student = ParallelWaveNet(tiny_config(**overrides)).to(dtype)
    with torch.no_grad():
        for flow in student.flows:
            flow.output.weight.normal_(0, 0.3)
    return student


def inputs(student: ParallelWaveNet, batch: int = 2, frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise z (batch, frames·hop) and a random mel (batch, n_mels, frames)."""
    dtype = next(student.parameters()).dtype
    mel = torch.randn(batch, student.config.n_mels, frames, dtype=dtype)
    return student.draw_noise((batch, frames * HOP), dtype=dtype), mel


def excitation_for(student: ParallelWaveNet, z: torch.Tensor) -> torch.Tensor | None:
    """A random excitation (batch, E, T) for a student that has one, else None."""
    E = student.config.excitation_channels
    return torch.randn(z.shape[0], E, z.shape[1], dtype=z.dtype) if E else None
