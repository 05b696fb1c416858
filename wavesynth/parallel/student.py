"""The Parallel WaveNet student: a stack of K inverse autoregressive flows over logistic (or Gaussian) noise.

Flow k maps its input z^(k-1) (z^(0) = z, the noise) to

    z^(k)_t = z^(k-1)_t · s_k + μ_k,    (μ_k, log s_k) = f_k(z^(k-1)_<t, c),

where f_k (``IAFFlow``, a ``wavesynth.flows.AutoregressiveAffine`` with the "clamped" scale, in the IAF
direction) is a WaveNet stack without skip path that sees the strict past of its input (the input is shifted
right by one sample), the whole upsampled mel c and, with ``StudentConfig.excitation = "sine"``, a
sample-rate excitation e (harmonics of the F0, ``wavesynth.pitch.SineExcitation``) in every layer. Each
flow is affine in its current input with coefficients that depend on the past only, so the composition is
too:

    x_t = z^(K)_t = z_t · s_tot + μ_tot,   s_tot = Π_k s_k,   μ_tot = Σ_k μ_k Π_{j>k} s_j,

with (μ_tot, s_tot) functions of z_<t. The Jacobian ∂x/∂z is lower triangular with diagonal s_tot, so
log|det| = Σ_t log s_tot, and p_S(x_t | z_<t) is the noise's distribution shifted by μ_tot and scaled by
s_tot: Logistic(μ_tot, s_tot) for logistic noise (N(μ_tot, s_tot²) for Gaussian noise). Sampling is one
parallel pass per flow over all T samples, batched over utterances.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WavesynthError
from ..flows import AutoregressiveAffine, Flow, StandardLogistic, StandardNormal
from ..wavenet.distributions import LocationScale, make_head
from ..wavenet.layers import RESIDUAL_SCALE, ConditioningUpsampler, WaveNetStack, pointwise, shift_right
from .config import StudentConfig


class StudentContext(NamedTuple):
    """What every flow of the student is conditioned on: the mel (B, n_mels, frames) and, for a student
    with one, the excitation e (B, E, frames·hop)."""

    mel: Tensor
    excitation: Tensor | None = None


class IAFFlow(AutoregressiveAffine):
    """One flow, a ``flows.AutoregressiveAffine`` in the IAF direction with the "clamped" scale: the
    inverse is the one pass x = z·s(z_<t) + μ(z_<t), log s = max(a, log_scale_min), and the forward
    z = (x - μ)/s takes T passes.

    Its conditioner: input 1x1 on shift_right(z), a skip-less WaveNet stack that sees the mel through
    ``upsampler`` (the student's, referenced, not owned: a shared one is in the state_dict once), output
    1x1 to (μ, a). The excitation e enters every layer of the stack (``excitation_at = "blocks"``), or only
    the input: h_0 = W_in·shift_right(z) + b_in + W_e·e (``"flow_input"``). The output weights start
    small, so each flow starts close to the affine map z·1 + b.

    >>> import torch
    >>> from wavesynth.parallel import StudentConfig
    >>> from wavesynth.wavenet import ConditioningUpsampler
    >>> config = StudentConfig(flow_layers=(2,), flow_cycles=(1,), channels=4, gate_channels=4, n_mels=3,
    ...                        hop_length=4, upsample_scales=(2, 2))
    >>> flow = IAFFlow(2, 1, config, ConditioningUpsampler(config.upsample_scales))
    >>> context = StudentContext(torch.randn(1, 3, 2))
    >>> z = torch.randn(1, 8)
    >>> x, logabsdet = flow.inverse(z, context)  # one pass
    >>> z_back, _ = flow(x, context)  # 8 passes
    >>> torch.allclose(z_back, z, atol=1e-5), flow.receptive_field
    (True, 7)
    """

    def __init__(self, layers: int, cycles: int, config: StudentConfig, upsampler: ConditioningUpsampler):
        super().__init__(direction="iaf", scale="clamped", log_scale_min=config.log_scale_min)
        object.__setattr__(self, "upsampler", upsampler)  # not a submodule: not in this flow's state_dict
        self.input_conv = nn.Conv1d(1, config.channels, 1)
        at_input = config.excitation_at == "flow_input"
        E = config.excitation_channels
        self.excitation_input = nn.Conv1d(E, config.channels, 1, bias=False) if E and at_input else None
        self.stack = WaveNetStack(
            layers, cycles, config.kernel_size, config.channels, config.gate_channels, config.n_mels,
            excitation_channels=0 if at_input else E,
        )
        self.output = nn.Conv1d(config.channels, 2, 1)
        nn.init.normal_(self.output.weight, std=0.01)

    @property
    def receptive_field(self) -> int:
        """(μ, s) at t depend on the input at t - receptive_field, ..., t - 1."""
        return self.stack.receptive_field

    def conditioner(self, z: Tensor, context: StudentContext) -> tuple[Tensor, Tensor]:
        """(a, μ), each (B, T), from the flow input z (B, T) and the context (mel, e)."""
        mel, excitation = context
        w, b = self.input_conv.weight, self.input_conv.bias
        h = torch.addcmul(b.view(1, -1, 1), w.view(1, -1, 1), shift_right(z.unsqueeze(1)))
        if self.excitation_input is not None:
            h = h + self.excitation_input(excitation)
            excitation = None
        h, _ = self.stack(h, mel, self.upsampler, excitation=excitation)
        mu, raw_log_s = pointwise(self.output.weight, h, self.output.bias.view(1, -1, 1)).unbind(1)
        return raw_log_s, mu


#: s_tot at initialisation (the last flow's log-scale bias): the student starts as noise at speech level.
INITIAL_SCALE = 0.05

#: Samples per tile of ``packed_flow``: a tile's activations stay in the CPU's L2 cache.
TILE_SAMPLES = 2048


@torch.no_grad()
def packed_flow(
    flow: IAFFlow, x: Tensor, mel: Tensor, phase: Tensor, excitation: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``flow.log_scale_and_shift(x, StudentContext(mel, excitation))`` reversed to (μ, log s), without
    autograd, repacked for speed (same maths, same result).

    Activations are time-major, (B, pad + T, C) with ``pad`` zero rows in front, so each dilated tap
    W_j x_{t-(k-1-j)·d} is a matmul over a shifted block of rows. Layer by layer, each utterance is done in
    tiles of about ``TILE_SAMPLES`` samples (whole frames): z = [A, 1]·[windows of the frame-rate
    projection V·mel, bias] (the upsampled conditioning; ``phase`` = A from
    ``ConditioningUpsampler.phase_weights``), z += E·e (the excitation, time-major), z += Σ_j W_j·taps_j,
    with the gate rows of ``ResidualBlock.packed_gates``, so one sigmoid gives [s₂, s₁] = [σ(z₂), σ(2z₁)]
    and a = tanh(z₁)σ(z₂) = 2s₁s₂ - s₂ is formed (negated) in place in the s₂ slot; h' = √½·(h + W_o a + b_o).

    The matmuls, sigmoids and gates run in the flow's parameter dtype (bfloat16 for bf16 synthesis, with
    fp32 accumulation inside each matmul). The residual stream h and the output 1x1, which gives
    (μ_k, log s_k), stay float32 (or float64): each layer's update W_o a is rounded once, relative to its
    own size, instead of h being re-rounded in every layer (a random walk over the stack); the taps read a
    bf16 copy of h, written tile by tile.
    """
    stack = flow.stack
    B, T = x.shape
    k, R = stack.kernel_size, flow.input_conv.out_channels
    pad = (k - 1) * max(stack.dilations)
    hop, Q = phase.shape[1], (phase.shape[0] - 1) // 2
    tile = hop * max(1, TILE_SAMPLES // hop)
    weights = torch.cat([phase, phase.new_ones(1, hop)]).T  # (hop, 2Q+2): the last "frame" is the bias
    frames_t = F.pad(mel, (Q, Q)).transpose(1, 2)  # (B, frames + 2Q, n_mels)
    low, exact = flow.output.weight.dtype, torch.promote_types(x.dtype, torch.float32)
    h, h_next = x.new_zeros(B, pad + T, R, dtype=exact), x.new_zeros(B, pad + T, R, dtype=exact)
    w_in, b_in = flow.input_conv.weight.view(-1).to(exact), flow.input_conv.bias.to(exact)
    h[:, pad:] = torch.addcmul(b_in, shift_right(x.to(exact)).unsqueeze(-1), w_in)
    if flow.excitation_input is not None:  # excitation_at = "flow_input": h_0 += W_e·e, then no more
        h[:, pad:].add_(excitation.transpose(1, 2) @ flow.excitation_input.weight[..., 0].T)
        excitation = None
    rounded = low != exact  # the taps read h_low, a copy of h in the weights' dtype; else h itself
    h_low, h_low_next = (h.to(low), x.new_zeros(B, pad + T, R, dtype=low)) if rounded else (h, h_next)
    G = stack.blocks[0].conv.out_channels
    H, z_tile = G // 2, x.new_empty(min(tile, T), G, dtype=low)
    excitation_t = None if excitation is None else excitation.transpose(1, 2)  # (B, T, E)
    for block in stack.blocks:
        d, packed = block.conv.dilation[0], block.packed_gates()
        taps = packed.taps.permute(2, 1, 0)  # (k, R, G)
        projections = frames_t @ packed.cond.T  # (B, frames + 2Q, G)
        windows = projections.unfold(1, 2 * Q + 1, 1)  # (B, frames, G, 2Q+1)
        bias = packed.bias.view(1, 1, G, 1).expand(*windows.shape[:3], 1)
        windows = torch.cat([windows, bias], -1).transpose(2, 3)  # (B, frames, 2Q+2, G)
        w_res, b_res = -packed.residual.T, RESIDUAL_SCALE * packed.residual_bias.to(exact)
        w_excitation = None if excitation is None else packed.excitation.T
        for b in range(B):
            for start in range(0, T, tile):
                end = min(start + tile, T)
                z = z_tile[: end - start]
                torch.matmul(weights, windows[b, start // hop : end // hop], out=z.view(-1, hop, G))
                if w_excitation is not None:
                    z.addmm_(excitation_t[b, start:end], w_excitation)
                for j in range(k):
                    lag = (k - 1 - j) * d
                    z.addmm_(h_low[b, pad + start - lag : pad + end - lag], taps[j])
                torch.sigmoid(z, out=z)
                minus_a = z[:, :H].sub_(z[:, H:].mul_(z[:, :H]), alpha=2)  # s₂ - 2s₁s₂ = -tanh(z₁)σ(z₂)
                rows = slice(pad + start, pad + end)
                if rounded:  # h' = √½·h + (√½·W_o a rounded once) + √½·b_o, in float32
                    update = torch.mm(minus_a, w_res).mul_(RESIDUAL_SCALE)
                    torch.add(update, h[b, rows], alpha=RESIDUAL_SCALE, out=h_next[b, rows])
                    h_next[b, rows].add_(b_res)
                    h_low_next[b, rows].copy_(h_next[b, rows])
                else:
                    torch.addmm(h[b, rows], minus_a, w_res, beta=RESIDUAL_SCALE, alpha=RESIDUAL_SCALE,
                                out=h_next[b, rows])
                    h_next[b, rows].add_(b_res)
        h, h_next = h_next, h
        h_low, h_low_next = (h_low_next, h_low) if rounded else (h, h_next)
    w_out, b_out = flow.output.weight[..., 0].to(exact), flow.output.bias.to(exact)
    out = torch.matmul(h[:, pad:], w_out.T).add_(b_out)  # (B, T, 2)
    return out[..., 0], out[..., 1].clamp(min=flow.log_scale_min)


class ParallelWaveNet(nn.Module):
    """The IAF student: ``forward(z, mel) -> (x, μ_tot, log s_tot)`` and ``sample(mel)``; ``flows`` are
    ``IAFFlow`` transforms (``wavesynth.flows.AutoregressiveAffine``) and ``as_flow`` is the whole student
    as a ``wavesynth.flows.Flow``.

    Chunked synthesis: the output at sample t depends on z_t, z_{t-R..t-1} (R = ``receptive_field``) and,
    through the upsampler, on mel frames up to ``mel_context_frames`` (Q) either side of the frames it uses.
    So a chunk of mel frames [a, b) with its noise gives exactly the unchunked output for samples of frames
    [a + L, b - Q), L = ``chunk_context_frames[0]`` = Q + ceil(R / hop), Q = ``chunk_context_frames[1]``.

    >>> import torch
    >>> from wavesynth.parallel import StudentConfig
    >>> config = StudentConfig(flow_layers=(2, 2), flow_cycles=(1, 1), channels=8, gate_channels=8, n_mels=5,
    ...                        hop_length=4, upsample_scales=(2, 2))
    >>> student = ParallelWaveNet(config)
    >>> mel = torch.randn(1, 5, 3)  # (batch, n_mels, frames)
    >>> x = student.sample(mel, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape), student.receptive_field
    ((1, 12), 14)
    >>> z = student.draw_noise((1, 12), generator=torch.Generator().manual_seed(0))  # the same noise
    >>> x_again, mu, log_s = student(z, mel)
    >>> torch.allclose(x_again, x, atol=1e-5), tuple(mu.shape) == tuple(log_s.shape) == (1, 12)
    (True, True)
    """

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        #: p_S(x_t | z_<t) as a location-scale head with params (μ_tot, log s_tot); also draws the noise ε.
        self.noise_head: LocationScale = make_head(config.noise, log_scale_min=-math.inf)
        count = 1 if config.shared_upsampler else len(config.flow_layers)
        self.upsamplers = nn.ModuleList(ConditioningUpsampler(config.upsample_scales) for _ in range(count))
        self.flows = nn.ModuleList(
            IAFFlow(layers, cycles, config, self.upsampler(k))
            for k, (layers, cycles) in enumerate(zip(config.flow_layers, config.flow_cycles, strict=True))
        )
        with torch.no_grad():
            self.flows[-1].output.bias[1] = math.log(INITIAL_SCALE)

    def upsampler(self, k: int) -> ConditioningUpsampler:
        """The mel upsampler of flow k (the shared one when ``config.shared_upsampler``)."""
        return self.upsamplers[0 if self.config.shared_upsampler else k]

    @property
    def receptive_field(self) -> int:
        """R = Σ_k R_k: x_t depends on z_t and the R samples of z before it."""
        return sum(flow.receptive_field for flow in self.flows)

    @property
    def mel_context_frames(self) -> int:
        """Q: the upsampled mel in frame n depends on mel frames n - Q .. n + Q."""
        return max(upsampler.context for upsampler in self.upsamplers)

    @property
    def chunk_context_frames(self) -> tuple[int, int]:
        """(left, right) mel frames a chunk needs around the frames whose samples it must get exactly."""
        Q = self.mel_context_frames
        return Q + math.ceil(self.receptive_field / self.config.hop_length), Q

    def as_flow(self, frames: int) -> Flow:
        """The student as a ``flows.Flow`` over noise of ``frames * hop_length`` samples, with context
        ``StudentContext(mel, excitation)``: ``sample`` runs the flows in one pass each, ``log_prob`` is the
        exact density log p_S(x | c) by T passes per flow (slow: for checks). Shares this model's weights.

        >>> import torch
        >>> from wavesynth.parallel import StudentConfig
        >>> config = StudentConfig(flow_layers=(2, 2), flow_cycles=(1, 1), channels=4, gate_channels=4,
        ...                        n_mels=3, hop_length=4, upsample_scales=(2, 2))
        >>> flow = ParallelWaveNet(config).as_flow(frames=2)
        >>> context = StudentContext(torch.randn(1, 3, 2))
        >>> x = flow.sample(1, context)
        >>> tuple(x.shape), tuple(flow.log_prob(x, context).shape)
        ((1, 8), (1,))
        """
        param = self.flows[-1].output.weight
        base = (StandardLogistic if self.config.noise == "logistic" else StandardNormal)(
            frames * self.config.hop_length
        ).to(param.device, param.dtype)
        return Flow(base, list(reversed(self.flows)))  # noise -> data applies flow 0 first

    def _check(self, z: Tensor, mel: Tensor, excitation: Tensor | None) -> None:
        cfg = self.config
        if mel.dim() != 3 or mel.shape[1] != cfg.n_mels:
            raise WavesynthError(f"mel must be (batch, {cfg.n_mels}, frames), got {tuple(mel.shape)}")
        expected = (mel.shape[0], mel.shape[2] * cfg.hop_length)
        if tuple(z.shape) != expected:
            raise WavesynthError(f"z must be (batch, frames * hop_length) = {expected}, got {tuple(z.shape)}")
        E = cfg.excitation_channels
        if E and (excitation is None or tuple(excitation.shape) != (*expected[:1], E, expected[1])):
            got = None if excitation is None else tuple(excitation.shape)
            raise WavesynthError("this student needs an excitation of shape "
                                 f"{(expected[0], E, expected[1])}, got {got}")
        if not E and excitation is not None:
            raise WavesynthError("this student has no excitation input (excitation = 'none'); pass "
                                 "excitation=None")

    def forward(
        self, z: Tensor, mel: Tensor, excitation: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x, μ_tot, log s_tot, each (B, T), for noise z (B, T), mel (B, n_mels, T / hop) and, for a
        student with an excitation, e (B, E, T).

        Flow by flow: x ← x·s_k + μ_k, μ_tot ← μ_tot·s_k + μ_k, log s_tot ← log s_tot + log s_k.
        """
        self._check(z, mel, excitation)
        context = StudentContext(mel, excitation)
        x, mu_tot, log_s_tot = z, torch.zeros_like(z), torch.zeros_like(z)
        for flow in self.flows:
            log_s, mu = flow.log_scale_and_shift(x, context)
            s = log_s.exp()
            x = torch.addcmul(mu, x, s)
            mu_tot = torch.addcmul(mu, mu_tot, s)
            log_s_tot = log_s_tot + log_s
        return x, mu_tot, log_s_tot

    def draw_noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """ε of ``shape`` from the noise distribution (standard logistic or normal)."""
        return self.noise_head.draw_noise(shape, generator, device, dtype)[:, 0]

    def step_log_prob(self, x: Tensor, mu_tot: Tensor, log_s_tot: Tensor) -> Tensor:
        """log p_S(x_t | z_<t): the noise density of (x - μ_tot)/s_tot minus log s_tot, per sample."""
        return self.noise_head.log_prob(torch.stack([mu_tot, log_s_tot], 1), x)

    @torch.no_grad()
    def sample(
        self,
        mel: Tensor,
        temperature: float = 1.0,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        excitation: Tensor | None = None,
    ) -> Tensor:
        """x (B, frames·hop) from mel (B, n_mels, frames): the flows applied to z = temperature·ε.

        ε is ``noise`` (B, frames·hop) when given, else drawn from ``generator`` on the model's device.
        Equal to ``forward(z, mel, excitation)[0]``, computed flow by flow with ``packed_flow``, each flow
        in its own parameter dtype. A flow with bfloat16 weights (bf16 synthesis,
        ``wavesynth.synthesis.StudentSynthesis.cast``) sees the mel and e rounded to bf16, while x, its
        residual stream, (μ_k, log s_k) and the composition x ← x·s_k + μ_k stay float32, so rounding does
        not pile up over the layers or the K flows.
        """
        param = self.flows[-1].output.weight
        exact = torch.promote_types(param.dtype, torch.float32)
        mel = mel.to(param.device, exact)
        if noise is None:
            shape = (mel.shape[0], mel.shape[-1] * self.config.hop_length)
            noise = self.draw_noise(shape, generator, param.device, exact)
        x = temperature * noise.to(param.device, exact)
        if excitation is not None:
            excitation = excitation.to(param.device, exact)
        self._check(x, mel, excitation)
        for k, flow in enumerate(self.flows):
            dtype = flow.output.weight.dtype
            phase = self.upsampler(k).phase_weights().to(dtype)
            e = None if excitation is None else excitation.to(dtype)
            mu, log_s = packed_flow(flow, x, mel.to(dtype), phase, e)
            x = torch.addcmul(mu, x, log_s.exp())
        return x
