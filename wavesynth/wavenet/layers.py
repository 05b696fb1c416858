"""WaveNet building blocks, shared by the teacher and the student's IAF flows.

Tensors are (batch, channels, time). ``WaveNetStack`` is the residual tower of gated, dilated, causal
blocks with local conditioning c (already at sample rate, from ``ConditioningUpsampler``) and optional
global conditioning g (e.g. a speaker embedding); with ``skip_channels=0`` it has no skip path and returns
the last residual output, which is what an IAF flow uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RESIDUAL_SCALE = math.sqrt(0.5)


def shift_right(x: Tensor) -> Tensor:
    """y_t = x_{t-1}, y_0 = 0, along the last axis: makes a causal network see only the strict past."""
    return F.pad(x, (1, 0))[..., :-1]


def dilations(layers: int, cycles: int) -> list[int]:
    """2^(i mod (layers / cycles)) for i < layers: ``cycles`` repeats of 1, 2, 4, ..."""
    per_cycle = layers // cycles
    return [2 ** (i % per_cycle) for i in range(layers)]


class CausalConv1d(nn.Conv1d):
    """y_t = b + Σ_j W_j x_{t-(k-1-j)·d}: a Conv1d fed (k-1)·d zeros on the left, so y_t sees x_<=t only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))


class ResidualBlock(nn.Module):
    """One gated residual layer.

    z = W_d ∗ x + V c (+ U g);  a = tanh(z_1:H) ⊙ σ(z_H:2H);  [r, s] = W_o a + b_o;
    returns ((x + r)·√½, s), with s = None when ``skip_channels`` is 0.
    """

    def __init__(
        self,
        residual_channels: int,
        gate_channels: int,
        kernel_size: int,
        dilation: int,
        cond_channels: int,
        global_channels: int = 0,
        skip_channels: int = 0,
    ):
        super().__init__()
        self.residual_channels = residual_channels
        self.conv = CausalConv1d(residual_channels, gate_channels, kernel_size, dilation)
        self.cond = nn.Conv1d(cond_channels, gate_channels, 1, bias=False) if cond_channels else None
        self.global_cond = nn.Linear(global_channels, gate_channels, bias=False) if global_channels else None
        self.out = nn.Conv1d(gate_channels // 2, residual_channels + skip_channels, 1)

    def forward(
        self, x: Tensor, cond: Tensor | None = None, global_cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        z = self.conv(x)
        if self.cond is not None:
            z = z + self.cond(cond)
        if self.global_cond is not None:
            z = z + self.global_cond(global_cond).unsqueeze(-1)
        tanh_in, gate_in = z.chunk(2, dim=1)
        out = self.out(torch.tanh(tanh_in) * torch.sigmoid(gate_in))
        residual, skip = out.split([self.residual_channels, out.shape[1] - self.residual_channels], dim=1)
        return (x + residual) * RESIDUAL_SCALE, (skip if skip.shape[1] else None)


class WaveNetStack(nn.Module):
    """``layers`` residual blocks with dilations 2^(i mod layers/cycles); output at t sees input at <= t.

    forward(x (B, R, T), cond (B, C, T), global_cond (B, D)) -> (last residual output, Σ skips or None).
    Receptive field: (k-1)·Σ dilations + 1 samples.
    """

    def __init__(
        self,
        layers: int,
        cycles: int,
        kernel_size: int,
        residual_channels: int,
        gate_channels: int,
        cond_channels: int,
        skip_channels: int = 0,
        global_channels: int = 0,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilations = dilations(layers, cycles)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                residual_channels,
                gate_channels,
                kernel_size,
                d,
                cond_channels,
                global_channels,
                skip_channels,
            )
            for d in self.dilations
        )

    @property
    def receptive_field(self) -> int:
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    def forward(
        self, x: Tensor, cond: Tensor | None = None, global_cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        skips = None
        for block in self.blocks:
            x, skip = block(x, cond, global_cond)
            if skip is not None:
                skips = skip if skips is None else skips + skip
        return x, skips


class ConditioningUpsampler(nn.Module):
    """Frames -> samples: per scale s, nearest-neighbour ×s then a learned time filter of width 2s+1.

    The filter is shared by all mel channels and starts as a moving average (as in r9y9's
    wavenet_vocoder), so the map is linear and the output has exactly frames·Π scales samples.
    """

    def __init__(self, scales: Sequence[int]):
        super().__init__()
        self.scales = tuple(scales)
        self.filters = nn.ParameterList(
            nn.Parameter(torch.full((1, 1, 2 * s + 1), 1 / (2 * s + 1))) for s in self.scales
        )

    @property
    def factor(self) -> int:
        return math.prod(self.scales)

    def forward(self, mel: Tensor) -> Tensor:
        """(B, C, F) -> (B, C, F · factor)."""
        batch, channels, frames = mel.shape
        x = mel.reshape(batch * channels, 1, frames)
        for scale, weight in zip(self.scales, self.filters, strict=True):
            x = F.conv1d(x.repeat_interleave(scale, dim=-1), weight, padding=scale)
        return x.reshape(batch, channels, frames * self.factor)
