"""Shared helpers for the WaveNet tests: a tiny model and random inputs."""

from __future__ import annotations

import torch

from wavesynth.wavenet import WaveNet, WaveNetConfig


def tiny_config(**overrides) -> WaveNetConfig:
    """6 layers in 2 cycles, 8/12/10 channels, 5 mels, hop 4: fast enough for exhaustive checks."""
    values = dict(
        layers=6,
        cycles=2,
        kernel_size=3,
        residual_channels=8,
        gate_channels=12,
        skip_channels=10,
        n_mels=5,
        hop_length=4,
        upsample_scales=(2, 2),
    )
    values.update(overrides)
    return WaveNetConfig(**values)


def tiny_wavenet(dtype: torch.dtype = torch.float32, **overrides) -> WaveNet:
    """An untrained tiny WaveNet in eval mode."""
    return WaveNet(tiny_config(**overrides)).to(dtype).eval()


def random_inputs(model: WaveNet, batch: int = 2, frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """A random mel (batch, n_mels, frames) and waveform (batch, frames·hop) in [-1, 1]."""
    dtype = next(model.parameters()).dtype
    mel = torch.randn(batch, model.config.n_mels, frames, dtype=dtype)
    x = torch.rand(batch, frames * model.config.hop_length, dtype=dtype) * 2 - 1
    return mel, x
