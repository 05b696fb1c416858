"""Cached autoregressive sampling from a WaveNet teacher: O(layers) per sample, static state.

Each layer l keeps a ring buffer of its last (k-1)·d_l inputs, so the dilated convolution at time t only
needs the current input plus k-1 stored ones. ``GenerationState`` allocates everything once (ring buffers,
activations, the frame-rate conditioning, the head's noise for all steps, the output) and its ``step()``
has static shapes, reads the time index from a device tensor and never synchronises with the host, so on
CUDA a chunk of steps is captured as a CUDA graph and replayed. Memory is about 100 bytes per sample and
utterance (noise, conditioning projections, output) plus the fixed state.

The weights are repacked so that a step costs few, large operations (tensors are feature-major with the
batch last):

* the conditioning terms of all layers come first: the upsampler is linear, shift-invariant and shared by
  the mel channels, so V_l·upsample(mel) = upsample(V_l·mel); the projections P = V·mel of all layers are
  precomputed at frame rate, and step t = n·hop + r needs Σ_q A[q, r]·P[n + q] over the 2Q+1 frames
  around it (A from ``ConditioningUpsampler.phase_weights``); one matmul makes these for a chunk of
  steps within a frame (at its first step), and each step copies its row;
* an excitation e (sample rate, known in advance) adds E_l·e_t to every layer's conditioning: one batched
  matmul per chunk of steps, at the refill;
* per layer, z = b_l + U_l g + (V_l c)_t (+ E_l e_t) + W_l [h_l(t-(k-1)d_l), ..., h_l(t)], one matmul
  over the ring buffer taps and the new input; tanh(z₁)·σ(z₂) = 2·σ(2z₁)σ(z₂) - σ(z₂), so with the rows
  reordered to [z₂, 2z₁] one sigmoid gives [s₂, s₁] = [σ(z₂), σ(2z₁)], s₁ ← s₁·s₂ in place gives p, and
  the residual and skip 1x1 convolutions act linearly on [s₂, p, 1] with weights [-W, 2W, b];
* the skips of all layers are one matmul over the stacked activations at the end.

The network runs in its layers' dtype: with bfloat16 weights (bf16 synthesis) the layers, ring buffers and
conditioning are bf16, while the output head (its two 1x1 layers, in their own dtype, and the
distribution), the noise and the output stay float32 (float64 for a float64 model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import WavesynthError
from .layers import RESIDUAL_SCALE

if TYPE_CHECKING:
    from .model import WaveNet


class GenerationState:
    """Preallocated state for generating ``mel.shape[-1] · hop`` samples from ``model``.

    ``advance()`` runs the network for the current step on ``x_prev`` (the previous sample, 0 at the start)
    and returns the head parameters (B, P); ``step()`` also samples x_t (or takes the head's mode when
    ``deterministic``), stores it (``samples()``) and feeds it back. ``noise`` (B, noise_size, T) holds
    the head's noise for every step (``head.draw_noise``, drawn on the device when None); ``excitation``
    (B, E, T) is the second local conditioning of a model with an excitation.
    """

    @torch.no_grad()
    def __init__(
        self,
        model: WaveNet,
        mel: Tensor,
        speaker: Tensor | None = None,
        noise: Tensor | None = None,
        temperature: float = 1.0,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        excitation: Tensor | None = None,
    ):
        param = model.stack.blocks[0].conv.weight
        device, dtype = param.device, param.dtype  # the network's dtype
        exact = torch.promote_types(dtype, torch.float32)  # the head's, the noise's and the output's dtype
        cfg, head, stack = model.config, model.head, model.stack
        self.head, self.temperature, self.deterministic = head, temperature, deterministic
        mel = mel.to(device, dtype)
        B, T = mel.shape[0], mel.shape[-1] * cfg.hop_length
        L, R, G, k = cfg.layers, cfg.residual_channels, cfg.gate_channels, cfg.kernel_size
        H = G // 2
        self.num_steps = T
        blocks = list(stack.blocks)

        packed = [b.packed_gates() for b in blocks]  # gate rows [σ half, tanh half], the tanh half doubled
        conv_w = torch.stack([p.taps for p in packed])  # (L, G, R, k)
        self.w_conv = conv_w.permute(0, 1, 3, 2).reshape(L, G, k * R).contiguous()  # taps oldest first
        w_cond = torch.cat([p.cond for p in packed])  # (L·G, C)
        bias = torch.cat([p.bias.unsqueeze(1) for p in packed])  # (L·G, 1)
        g = model.speaker_vector(mel, speaker)
        if g is not None:
            bias = bias + torch.cat([p.global_cond for p in packed]) @ g.T
        self.bias = bias.expand(L * G, B).reshape(1, L * G * B)
        self.w_res = torch.stack([torch.cat([-p.residual, 2 * p.residual, p.residual_bias.unsqueeze(1)], 1)
                                  for p in packed])
        self.w_skip = torch.cat([torch.cat([-p.skip, 2 * p.skip, p.skip_bias.unsqueeze(1)], 1)
                                 for p in packed], 1)
        self.w_in, self.b_in = model.input_conv.weight[..., 0], model.input_conv.bias.unsqueeze(1)
        conv1, conv2 = model.output_hidden, model.output
        self.w_out1, self.b_out1 = conv1.weight[..., 0].to(exact), conv1.bias.unsqueeze(1).to(exact)
        self.w_out2, self.b_out2 = conv2.weight[..., 0].to(exact), conv2.bias.unsqueeze(1).to(exact)

        # Ring buffers: layer l owns rows [offset_l, offset_l + (k-1)·d_l) of ``history``. At step t it reads
        # slots (t - j·d_l) mod size_l for j = k-1..1 and then overwrites slot t mod size_l with h_l(t).
        # The slot pattern repeats with period max size_l, so it is tabulated once.
        sizes = [(k - 1) * d for d in stack.dilations]
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
        period = max(sizes)
        t = torch.arange(period).unsqueeze(1)
        size_t = torch.tensor(sizes)
        lags = torch.tensor([[(k - 1 - i) * d for i in range(k - 1)] for d in stack.dilations])  # (L, k-1)
        read = offsets.unsqueeze(1) + (t.unsqueeze(2) - lags) % size_t.unsqueeze(1)  # (period, L, k-1)
        write = offsets + t % size_t  # (period, L)
        self.slots = torch.cat([read.flatten(1), write], 1).to(device)
        self.num_reads = L * (k - 1)
        self.history = torch.zeros(sum(sizes), R, B, device=device, dtype=dtype)

        # Conditioning projections of all layers at frame rate, Q zero frames either side, time-major; the
        # conditioning of the current chunk of steps (chunk divides hop, so a chunk lies within one frame).
        upsampler = model.upsampler
        self.hop = cfg.hop_length
        self.phase = upsampler.phase_weights().to(dtype).T.contiguous()  # (hop, 2Q+1)
        self.window = torch.arange(2 * upsampler.context + 1, device=device)
        projections = F.pad(torch.matmul(w_cond, mel), (upsampler.context, upsampler.context))
        self.projections = projections.permute(2, 1, 0).contiguous()  # (F + 2Q, L·G, B)
        self.chunk = max(c for c in range(1, 17) if self.hop % c == 0)
        self.chunk_steps = torch.arange(self.chunk, device=device)
        self.cond = torch.empty(self.chunk, L * G * B, device=device, dtype=dtype)
        self.excitation = None
        E = cfg.excitation_channels
        if E or excitation is not None:
            if excitation is None or tuple(excitation.shape) != (B, E, T):
                got = None if excitation is None else tuple(excitation.shape)
                raise WavesynthError(f"this model needs an excitation of shape {(B, E, T)}, got {got}"
                                     if E else "this model has no excitation input; pass excitation=None")
            w_excitation = torch.cat([p.excitation for p in packed])  # (L·G, E)
            self.w_excitation = w_excitation.expand(self.chunk, L * G, E)
            self.excitation = excitation.to(device, dtype).permute(2, 1, 0).contiguous()  # (T, E, B)
        self._host_t = 0
        if noise is None:
            noise = head.draw_noise((B, T), generator, device, exact)
        self.noise = noise.to(device, exact).permute(2, 1, 0).contiguous()  # (T, noise_size, B)

        # Activations: per layer [k-1 past inputs, input h_l] (the convolution's operand), the gate
        # pre-activations z_l (all layers' conditioning and bias terms first), and [s₂, p, 1]: the sigmoid
        # writes [s₂, s₁] and s₁ is then multiplied by s₂ in place.
        self.x = torch.zeros(L, k * R, B, device=device, dtype=dtype)
        self.z = torch.empty(L, G, B, device=device, dtype=dtype)
        self.act = torch.empty(L, G + 1, B, device=device, dtype=dtype)
        self.act[:, -1] = 1
        self.x_prev = torch.zeros(1, B, device=device, dtype=dtype)  # x_{t-1} in the network's dtype
        self.output = torch.zeros(T + 1, B, device=device, dtype=exact)  # x_t in row t + 1
        self.t = torch.zeros(1, dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.period = period
        past = (k - 1) * R
        self._past, self._h = self.x[:, :past], self.x[:, past:]
        self._z_row = self.z.view(1, L * G * B)
        self._act_flat = self.act.view(L * (G + 1), B)
        self._layers = [
            (
                self.z[i],
                self.w_conv[i],
                self.x[i],
                self.act[i, :G],
                self.act[i, :H],
                self.act[i, H:G],
                self.w_res[i],
                self.act[i],
                self._h[i],
                self._h[i + 1] if i + 1 < L else None,
            )
            for i in range(L)
        ]
        self._past_shape = self._past.shape

    def samples(self) -> Tensor:
        """The samples generated so far, (B, T) (zero after the current step)."""
        return self.output[1:].T

    def reset(self) -> None:
        """Back to t = 0 with empty queues (weights, mel and noise are kept)."""
        for buffer in (self.history, self.x, self.x_prev, self.output, self.t, self.slot):
            buffer.zero_()
        self._host_t = 0

    def _refill(self) -> None:
        """Conditioning of steps t..t+chunk-1: Σ_q A[q, r]·P[n + q] + bias, one matmul (+ E·e_t, one more)."""
        frame = torch.div(self.t, self.hop, rounding_mode="floor")
        window = self.projections.index_select(0, frame + self.window)
        phase = self.phase.index_select(0, torch.remainder(self.t, self.hop) + self.chunk_steps)
        torch.addmm(self.bias, phase, window.view(len(self.window), -1), out=self.cond)
        if self.excitation is not None:
            rows = self.excitation.index_select(0, self.t + self.chunk_steps)  # (chunk, E, B)
            self.cond.view(self.chunk, -1, rows.shape[-1]).baddbmm_(self.w_excitation, rows)

    def advance(self) -> Tensor:
        """Head parameters (B, P) for step t given x_prev = x_{t-1}; pushes the layer inputs, t += 1.

        At the first step of every chunk it refills the conditioning (decided by a host-side counter, so a
        CUDA graph of ``chunk`` steps from a chunk boundary is valid for every chunk).
        """
        if self._host_t % self.chunk == 0:
            self._refill()
        self._host_t += 1
        slots = self.slots.index_select(0, self.slot)[0]
        self.step_noise = self.noise.index_select(0, self.t)[0].T
        torch.index_select(self.cond, 0, torch.remainder(self.t, self.chunk), out=self._z_row)
        self._past.copy_(self.history.index_select(0, slots[: self.num_reads]).view(self._past_shape))
        torch.addmm(self.b_in, self.w_in, self.x_prev, out=self._h[0])
        for z, w_conv, x, gates, s2, s1, w_res, res_in, h, h_next in self._layers:
            z.addmm_(w_conv, x)
            torch.sigmoid(z, out=gates)
            s1.mul_(s2)
            if h_next is not None:
                torch.addmm(h, w_res, res_in, beta=RESIDUAL_SCALE, alpha=RESIDUAL_SCALE, out=h_next)
        self.history.index_copy_(0, slots[self.num_reads :], self._h)
        hidden = torch.mm(self.w_skip, self._act_flat).relu_().to(self.w_out1.dtype)
        hidden = torch.addmm(self.b_out1, self.w_out1, hidden).relu_()
        params = torch.addmm(self.b_out2, self.w_out2, hidden)
        self.slot.add_(1).remainder_(self.period)
        self.t.add_(1)
        return params.T

    def step(self) -> None:
        """One sample: x_t from the head (noise of step t, or the mode), stored and fed back."""
        params = self.advance()
        if self.deterministic:
            x = self.head.mode(params)
        else:
            x = self.head.sample_from_noise(params, self.step_noise, self.temperature)
        self._store(x)

    def force(self, x: Tensor) -> None:
        """One step with x_t (B,) given instead of sampled (teacher forcing a known prefix)."""
        self.advance()
        self._store(x.to(self.output.dtype))

    def _store(self, x: Tensor) -> None:
        x = x.unsqueeze(0)
        self.output.index_copy_(0, self.t, x)
        self.x_prev.copy_(x)


def _run(state: GenerationState, use_cuda_graph: bool, prefix: Tensor | None = None) -> None:
    """``num_steps`` steps, the first ``prefix.shape[1]`` forced to ``prefix`` (B, P) and the rest sampled,
    replaying a CUDA graph of one chunk of steps on CUDA devices (when P is a whole number of chunks)."""
    forced = 0 if prefix is None else prefix.shape[1]
    graph = _capture(state) if use_cuda_graph and state.output.is_cuda and forced % state.chunk == 0 else None
    for t in range(forced):
        state.force(prefix[:, t])
    if graph is None:
        for _ in range(state.num_steps - forced):
            state.step()
    else:
        for _ in range((state.num_steps - forced) // state.chunk):
            graph.replay()


def _capture(state: GenerationState) -> torch.cuda.CUDAGraph:
    """A CUDA graph of ``state.chunk`` steps from a chunk boundary (state is reset to t = 0 after)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(state.chunk):
            state.step()
    torch.cuda.current_stream().wait_stream(side)
    state.reset()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(state.chunk):
            state.step()
    state.reset()
    return graph


def generate(
    model: WaveNet,
    mel: Tensor,
    speaker: Tensor | None = None,
    temperature: float = 1.0,
    lengths: Tensor | None = None,
    deterministic: bool = False,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    use_cuda_graph: bool = True,
    prefix: Tensor | None = None,
    excitation: Tensor | None = None,
) -> Tensor:
    """Samples x ~ Π_t p(x_t | x_<t, c), (B, frames·hop), or (frames·hop,) for a single (n_mels, frames) mel.

    ``lengths`` (B,) gives each utterance's number of valid frames in a right-padded batch: its frames past
    that are zeroed (the upsampler takes the mel as zero outside its frames) and its output is zero past
    lengths·hop, so row b equals generating utterance b alone with the same noise. ``temperature`` scales
    the spread of each step's distribution (see the head); ``deterministic`` takes the head's mode instead
    of sampling. ``noise`` (B, head.noise_size, T) fixes the head's noise (``head.draw_noise``; else it is
    drawn on the device from ``generator``). ``prefix`` (B, P) continues given audio: its P samples are fed
    (teacher forcing) instead of sampled and returned as the first P samples of the output. ``excitation``
    (B, E, T), or (E, T) with a single mel, is the excitation of a model that has one.
    """
    single = mel.dim() == 2
    mel = mel.unsqueeze(0) if single else mel
    if single and excitation is not None:
        excitation = excitation.unsqueeze(0)
    if mel.dim() != 3 or mel.shape[1] != model.config.n_mels:
        raise WavesynthError(f"mel must be (batch, {model.config.n_mels}, frames), got {tuple(mel.shape)}")
    hop = model.config.hop_length
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=mel.device)
            mel = mel * (torch.arange(mel.shape[-1], device=mel.device) < lengths.unsqueeze(1)).unsqueeze(1)
        state = GenerationState(model, mel, speaker, noise, temperature, deterministic, generator, excitation)
        if prefix is not None:
            prefix = prefix.unsqueeze(0) if prefix.dim() == 1 else prefix
            if prefix.shape[0] != mel.shape[0] or prefix.shape[1] > state.num_steps:
                raise WavesynthError(f"prefix must be (batch={mel.shape[0]}, at most {state.num_steps} "
                                     f"samples), got {tuple(prefix.shape)}")
            prefix = prefix.to(state.output.device)
        _run(state, use_cuda_graph, prefix)
        out = state.samples().clone()
        if lengths is not None:
            ends = lengths.to(out.device).unsqueeze(1) * hop
            out = out * (torch.arange(out.shape[1], device=out.device) < ends)
    model.train(was_training)
    return out[0] if single else out
