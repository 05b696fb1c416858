"""WaveNet building blocks, shared by the teacher and the student's IAF flows.

Tensors are (batch, channels, time). ``WaveNetStack`` is the residual tower of gated, dilated, causal
blocks with local conditioning on a mel-spectrogram (given at frame rate with a ``ConditioningUpsampler``,
each block upsamples its own projection of it), optionally a second local conditioning e at sample rate
(an excitation such as ``wavesynth.pitch.SineExcitation``), and optional global conditioning g (e.g. a
speaker embedding); with ``skip_channels=0`` it has no skip path and returns the last residual output,
which is what an IAF flow uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WavesynthError

RESIDUAL_SCALE = math.sqrt(0.5)


def shift_right(x: Tensor) -> Tensor:
    """y_t = x_{t-1}, y_0 = 0, along the last axis: makes a causal network see only the strict past."""
    return F.pad(x, (1, 0))[..., :-1]


def dilations(layers: int, cycles: int) -> list[int]:
    """2^(i mod (layers / cycles)) for i < layers: ``cycles`` repeats of 1, 2, 4, ..."""
    per_cycle = layers // cycles
    return [2 ** (i % per_cycle) for i in range(layers)]


def pointwise(weight: Tensor, x: Tensor, init: Tensor) -> Tensor:
    """init + W x over channels of x (B, C_in, T) for a 1x1 weight (C_out, C_in, 1), as one batched matmul."""
    return torch.baddbmm(init, weight[..., 0].expand(x.shape[0], -1, -1), x)


def polyphase(frames: Tensor, phase: Tensor, bias: Tensor | None = None) -> Tensor:
    """Upsample (B, C, F) -> (B, C, F·hop): sample n·hop + r is Σ_q A[q, r]·frames[n + q] (+ bias (B|1, C)).

    A = ``phase`` (2Q+1, hop) weights the 2Q+1 frames around n (zero outside); one matmul over the windows.
    """
    batch, channels, frames_count = frames.shape
    context = (phase.shape[0] - 1) // 2
    windows = F.pad(frames, (context, context)).unfold(2, 2 * context + 1, 1)  # (B, C, F, 2Q+1)
    if bias is not None:  # a constant extra "frame" with weight 1 in every phase
        constant = bias.view(-1, channels, 1, 1).expand(batch, channels, frames_count, 1)
        windows = torch.cat([windows, constant], dim=-1)
        phase = torch.cat([phase, phase.new_ones(1, phase.shape[1])])
    return (windows @ phase).reshape(batch, channels, -1)


class CausalConv1d(nn.Conv1d):
    """y_t = b + Σ_j W_j x_{t-(k-1-j)·d}: a Conv1d fed (k-1)·d zeros on the left, so y_t sees x_<=t only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: Tensor, init: Tensor | None = None) -> Tensor:
        """init + Σ_j W_j x_{t-(k-1-j)·d}; ``init`` (broadcastable to (B, C_out, T)) defaults to the bias."""
        padded = F.pad(x, (self.left_padding, 0))
        if init is None:
            return F.conv1d(padded, self.weight, self.bias, dilation=self.dilation)
        return F.conv1d(padded, self.weight, dilation=self.dilation).add_(init)


class PackedGates(NamedTuple):
    """A ``ResidualBlock``'s weights laid out for the fast no-autograd paths (the teacher's cached generation,
    the student's packed flows). The gate rows are reordered to [σ half, tanh half] with the tanh half
    doubled, so one sigmoid of z gives [s₂, s₁] = [σ(z₂), σ(2z₁)] and a = tanh(z₁)σ(z₂) = 2s₁s₂ - s₂."""

    taps: Tensor  # (G, R, k): the dilated convolution W_d, oldest tap first
    bias: Tensor  # (G,)
    cond: Tensor | None  # (G, C): V, the mel's projection
    excitation: Tensor | None  # (G, E): E, the excitation's projection
    global_cond: Tensor | None  # (G, D): U, the global conditioning's projection
    residual: Tensor  # (R, H) and (R,): the residual rows of W_o, b_o
    residual_bias: Tensor
    skip: Tensor  # (S, H) and (S,): the skip rows (S = 0 without a skip path)
    skip_bias: Tensor


class ResidualBlock(nn.Module):
    """One gated residual layer.

    z = W_d ∗ x + V c (+ E e) (+ U g);  a = tanh(z_1:H) ⊙ σ(z_H:2H);  [r, s] = W_o a + b_o;
    returns ((x + r)·√½, s), with s = None when ``skip_channels`` is 0. The conditioning c = upsample(mel)
    enters as V·upsample(mel) = upsample(V·mel) (the upsampler is linear and shared by the channels), so
    the projection runs at frame rate; tanh(u) is evaluated as 2σ(2u) - 1, which is exact and several
    times faster than torch.tanh on CPU.
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
        excitation_channels: int = 0,
    ):
        super().__init__()
        self.residual_channels = residual_channels
        self.conv = CausalConv1d(residual_channels, gate_channels, kernel_size, dilation)
        self.cond = nn.Conv1d(cond_channels, gate_channels, 1, bias=False) if cond_channels else None
        self.excitation = (
            nn.Conv1d(excitation_channels, gate_channels, 1, bias=False) if excitation_channels else None
        )
        self.global_cond = nn.Linear(global_channels, gate_channels, bias=False) if global_channels else None
        self.out = nn.Conv1d(gate_channels // 2, residual_channels + skip_channels, 1)

    def forward(
        self,
        x: Tensor,
        mel: Tensor | None = None,
        phase: Tensor | None = None,
        global_cond: Tensor | None = None,
        excitation: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, R, T); mel (B, C, F) with F·hop = T and the upsampler's ``phase`` weights; g (B, D);
        e (B, E, T)."""
        bias = self.conv.bias.unsqueeze(0)
        if self.global_cond is not None:
            bias = bias + self.global_cond(global_cond)
        if self.cond is not None:
            z = polyphase(torch.matmul(self.cond.weight[..., 0], mel), phase, bias)
        else:
            z = bias.unsqueeze(-1).expand(x.shape[0], -1, x.shape[-1]).clone()
        if self.excitation is not None:
            z = pointwise(self.excitation.weight, excitation, z)
        z = self.conv(x, z)
        tanh_in, gate_in = z.chunk(2, dim=1)
        a = torch.sigmoid(gate_in) * (2 * torch.sigmoid(2 * tanh_in) - 1)
        out = pointwise(self.out.weight, a, self.out.bias.view(1, -1, 1))
        residual, skip = out.split([self.residual_channels, out.shape[1] - self.residual_channels], dim=1)
        return torch.add(x, residual).mul_(RESIDUAL_SCALE), (skip if skip.shape[1] else None)

    def packed_gates(self) -> PackedGates:
        """The weights in the fast paths' layout (``PackedGates``), in the block's dtype."""
        G, R = self.conv.out_channels, self.residual_channels
        H = G // 2
        order = torch.cat([torch.arange(H, G), torch.arange(H)]).to(self.conv.weight.device)
        scale = torch.ones(G, device=self.conv.weight.device, dtype=self.conv.weight.dtype)
        scale[H:] = 2

        def rows(weight: Tensor | None) -> Tensor | None:
            return None if weight is None else weight[order] * scale.view(-1, *[1] * (weight.dim() - 1))

        w_out, b_out = self.out.weight[..., 0], self.out.bias
        return PackedGates(
            taps=rows(self.conv.weight), bias=rows(self.conv.bias),
            cond=None if self.cond is None else rows(self.cond.weight[..., 0]),
            excitation=None if self.excitation is None else rows(self.excitation.weight[..., 0]),
            global_cond=None if self.global_cond is None else rows(self.global_cond.weight),
            residual=w_out[:R], residual_bias=b_out[:R], skip=w_out[R:], skip_bias=b_out[R:],
        )


class WaveNetStack(nn.Module):
    """``layers`` residual blocks with dilations 2^(i mod layers/cycles); output at t sees input at <= t.

    forward(x (B, R, T), mel (B, C, F), upsampler, global_cond (B, D), excitation (B, E, T)) -> (last
    residual output, Σ skips or None), conditioned on upsampler(mel) (B, C, T) and the excitation.
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
        excitation_channels: int = 0,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.excitation_channels = excitation_channels
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
                excitation_channels,
            )
            for d in self.dilations
        )

    @property
    def receptive_field(self) -> int:
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    def forward(
        self,
        x: Tensor,
        mel: Tensor | None = None,
        upsampler: ConditioningUpsampler | None = None,
        global_cond: Tensor | None = None,
        excitation: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        if self.excitation_channels:
            expected = (x.shape[0], self.excitation_channels, x.shape[-1])
            if excitation is None or tuple(excitation.shape) != expected:
                got = None if excitation is None else tuple(excitation.shape)
                raise WavesynthError(f"this model needs an excitation of shape {expected}, got {got}")
        elif excitation is not None:
            raise WavesynthError("this model has no excitation input (excitation = 'none'); pass "
                                 "excitation=None")
        phase = None if mel is None else upsampler.phase_weights()
        skips = None
        for block in self.blocks:
            x, skip = block(x, mel, phase, global_cond, excitation)
            if skip is not None:
                skips = skip.clone() if skips is None else skips.add_(skip)
        return x, skips


class ConditioningUpsampler(nn.Module):
    """Frames -> samples: per scale s, nearest-neighbour ×s then a learned time filter of width 2s+1.

    The filters are shared by all mel channels and start as moving averages (as in r9y9's wavenet_vocoder).
    The map is linear and shift-invariant with the mel taken as zero outside its frames, so output sample
    n·hop + r is Σ_q A[q, r]·mel[n + q] over frames q = -Q..Q: ``phase_weights()`` composes the stages into
    A (from the impulse response), and the forward pass is one matmul over windows of 2Q+1 frames
    (``polyphase``). The residual blocks and the cached generator upsample projections V·mel with the same
    A. Output: exactly frames·hop samples.
    """

    def __init__(self, scales: Sequence[int]):
        super().__init__()
        self.scales = tuple(scales)
        self.filters = nn.ParameterList(
            nn.Parameter(torch.full((2 * s + 1,), 1 / (2 * s + 1))) for s in self.scales
        )
        with torch.no_grad():
            support = self._impulse_response([torch.ones_like(w) for w in self.filters], len(self.scales) + 1)
        nonzero = support.reshape(-1, self.factor).abs().sum(1).nonzero().flatten()
        self.context = int((nonzero - len(self.scales) - 1).abs().max())

    @property
    def factor(self) -> int:
        return math.prod(self.scales)

    def _impulse_response(self, filters: Sequence[Tensor], half: int) -> Tensor:
        """The stages applied in turn to a unit frame with ``half`` zero frames on each side."""
        x = torch.zeros(1, 1, 2 * half + 1, dtype=filters[0].dtype, device=filters[0].device)
        x[..., half] = 1
        for scale, weight in zip(self.scales, filters, strict=True):
            x = F.conv1d(x.repeat_interleave(scale, dim=-1), weight.view(1, 1, -1), padding=scale)
        return x.flatten()

    def phase_weights(self) -> Tensor:
        """A (2Q+1, hop): A[q + Q, r] is the weight of frame n + q in output sample n·hop + r."""
        Q = self.context
        response = self._impulse_response(list(self.filters), Q + 1).view(-1, self.factor)
        return response[1:-1].flip(0)

    def forward(self, mel: Tensor) -> Tensor:
        """(B, C, F) -> (B, C, F · factor)."""
        return polyphase(mel, self.phase_weights())
