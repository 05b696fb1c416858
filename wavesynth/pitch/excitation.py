"""The sine excitation: sample-rate harmonics of a frame-rate F0 track, a source for source-filter vocoders.

From frame F0 f (Hz, 0 = unvoiced) it builds, for every sample t of the utterance,

    e_t = [α · v_t · [k·f_t < sr/2] · sin(2π k φ_t)  for k = 1..N,  v_t],
    φ_t = φ_0 + Σ_{u≤t} f_u / sr   (accumulated in float64, taken mod 1),

with N = ``harmonics``, α = ``AMPLITUDE``, v_t the voicing of the frame nearest to t and f_t the F0 at
sample t: interpolated linearly in log-F0 between the centres of two voiced frames, held at the edge
frame's F0 where a voiced run starts or ends, and 0 where unvoiced. Harmonics above Nyquist are zero,
unvoiced samples carry no sine, and the last channel is the voicing v_t. The phase runs on through
unvoiced stretches at their (zero) frequency, so it never jumps, and in float64 it stays exact to far
below a microcycle over hours of audio.

Chunked synthesis computes the phase once for the whole utterance (``frequency`` then ``phase``) and
takes the chunks' signals from slices of it (``signal``), so chunked output equals unchunked output.
NSF (Wang et al.), SiFi-GAN and DDSP build their sources the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..audio.features import MelConfig
from ..errors import WavesynthError

#: Peak amplitude α of each harmonic (about the level of speech; the probe that motivated this used 0.1).
AMPLITUDE = 0.1

#: The excitations a model config may name: "none" (mel only) or "sine" (harmonics + voicing).
EXCITATIONS = ("none", "sine")


def excitation_channels(kind: str, harmonics: int) -> int:
    """Channels E of excitation ``kind`` with ``harmonics`` sines: 0 for "none", harmonics + 1 for "sine".

    ValueError (one line) for an unknown kind or a harmonics count below 1.
    """
    if kind not in EXCITATIONS:
        raise WavesynthError(f"excitation must be one of {EXCITATIONS}, got {kind!r}")
    if not isinstance(harmonics, int) or harmonics < 1:
        raise WavesynthError(f"harmonics must be a positive integer, got {harmonics!r}")
    return 0 if kind == "none" else harmonics + 1


class SineExcitation:
    """Harmonic excitation e (B, harmonics + 1, frames·hop) from frame F0 (B, frames); see the module doc.

    ``frame_offset`` is the sample on which frame 0 is centred (frame n on n·hop + frame_offset):
    ``for_mel`` takes it from the mel preset's padding.

    >>> excitation = SineExcitation(harmonics=4, sample_rate=16000, hop_length=100)
    >>> e = excitation(torch.tensor([[0.0, 200.0, 200.0, 0.0]]))
    >>> tuple(e.shape), float(e[0, -1, 150]), float(e[0, -1, 10])
    ((1, 5, 400), 1.0, 0.0)
    """

    def __init__(self, harmonics: int, sample_rate: int, hop_length: int, frame_offset: float | None = None):
        excitation_channels("sine", harmonics)
        self.harmonics, self.sample_rate, self.hop_length = harmonics, sample_rate, hop_length
        self.frame_offset = hop_length / 2 if frame_offset is None else frame_offset

    @classmethod
    def for_mel(cls, harmonics: int, mel: MelConfig) -> SineExcitation:
        """The excitation aligned with ``mel``'s frames (centred on n·hop + hop/2 or n·hop)."""
        return cls(harmonics, mel.sample_rate, mel.hop_length, mel.frame_offset)

    @property
    def channels(self) -> int:
        return self.harmonics + 1

    def frequency(self, f0: Tensor) -> Tensor:
        """f_t (B, frames·hop) in Hz, float64, from frame F0 (B, frames) (0 = unvoiced)."""
        f0 = f0.to(torch.float64)
        frames = f0.shape[-1]
        t = torch.arange(frames * self.hop_length, dtype=torch.float64, device=f0.device)
        u = (t - self.frame_offset) / self.hop_length  # position in frames
        left = u.floor().clamp(0, frames - 1).long()
        right = (left + 1).clamp(max=frames - 1)
        weight = (u - left).clamp(0, 1)
        nearest = (u + 0.5).floor().clamp(0, frames - 1).long()  # frame n owns [n·hop, (n+1)·hop)
        voiced = f0 > 0
        log_f0 = f0.clamp(min=1e-3).log()
        f_left, f_right = log_f0[..., left], log_f0[..., right]
        v_left, v_right = voiced[..., left], voiced[..., right]
        both = torch.lerp(f_left, f_right, weight)
        log_f = torch.where(v_left & v_right, both, torch.where(v_left, f_left, f_right))
        return torch.where(voiced[..., nearest], log_f.exp(), torch.zeros_like(log_f))

    def phase(self, frequency: Tensor, phase0: Tensor | float = 0.0) -> Tensor:
        """φ_t = φ_0 + Σ_{u≤t} f_u / sr mod 1, float64, (B, T); ``phase0`` is φ_0 in cycles, scalar or (B,).

        Summed in two levels, within each hop of samples and then over the hops' totals mod 1, so the
        rounding error stays below 1e-9 cycles over hours (one running sum drifts to 1e-5 in 10 minutes).
        """
        phase0 = torch.as_tensor(phase0, dtype=torch.float64, device=frequency.device).reshape(-1, 1, 1)
        batch, samples = frequency.shape
        hop = self.hop_length
        steps = F.pad(frequency / self.sample_rate, (0, -samples % hop)).view(batch, -1, hop)
        within = torch.cumsum(steps, dim=-1)
        totals = torch.remainder(within[..., -1], 1.0)
        starts = torch.remainder(torch.cumsum(totals, dim=-1) - totals, 1.0).unsqueeze(-1)
        return torch.remainder(phase0 + starts + within, 1.0).view(batch, -1)[:, :samples]

    def signal(self, frequency: Tensor, phase: Tensor) -> Tensor:
        """e (B, harmonics + 1, T) float32 from f_t and φ_t (B, T), e.g. slices of a whole utterance's."""
        k = torch.arange(1, self.harmonics + 1, dtype=torch.float64, device=frequency.device).view(-1, 1)
        voiced = (frequency > 0).unsqueeze(1)  # (B, 1, T)
        below_nyquist = k * frequency.unsqueeze(1) < self.sample_rate / 2  # (B, N, T)
        # sin(2π k φ) with k φ reduced mod 1 in float64 first, so the float32 sine sees a small argument
        sines = torch.sin(2 * math.pi * torch.remainder(k * phase.unsqueeze(1), 1.0)).float()
        harmonics = AMPLITUDE * sines * (voiced & below_nyquist)
        return torch.cat([harmonics, voiced.float()], dim=1)

    def __call__(self, f0: Tensor, phase0: Tensor | float = 0.0) -> Tensor:
        """e (B, harmonics + 1, frames·hop) float32 for frame F0 (B, frames) in Hz, starting at φ_0."""
        frequency = self.frequency(f0)
        return self.signal(frequency, self.phase(frequency, phase0))
