"""The one interface through which the ``Vocoder`` drives a model, and an adapter per model type.

The Vocoder cuts a mel into chunks and runs each on frames [a - L, b + Q) (``chunk_context_frames`` =
(L, Q)), with the noise of those samples and, for an autoregressive model, the audio it already made for
frames [a - L, a) as a known prefix. A model type plugs in by an adapter that satisfies ``SynthesisModel``,
registered in ``wavesynth.pretrained.MODEL_TYPES``.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from .errors import WavesynthError
from .parallel import ParallelWaveNet
from .train.precision import resolve_precision
from .wavenet import WaveNet
from .wavenet.generation import generate


class SynthesisModel(Protocol):
    """A model as the Vocoder uses it. ``model.config`` has ``n_mels``, ``hop_length``,
    ``excitation_channels`` and ``harmonics``; ``auto_bf16`` says whether precision "auto" may pick bf16
    (``synthesis_precision``)."""

    model: nn.Module
    auto_bf16: ClassVar[bool]

    @property
    def chunk_context_frames(self) -> tuple[int, int]:
        """(left, right) mel frames a chunk runs on beyond its own, for its own samples to come out exact."""

    def draw_noise(self, samples: int, generator: torch.Generator) -> Tensor:
        """float32 noise (1, ..., samples) on the CPU, drawn from ``generator``."""

    def cast(self, precision: str) -> nn.Module:
        """``model`` (in place) in the arithmetic of ``precision`` ("fp32" or "bf16")."""

    def synthesize(self, mel: Tensor, noise: Tensor, excitation: Tensor | None, temperature: float,
                   prefix: Tensor) -> Tensor:
        """Audio (B, frames·hop) for mel (B, n_mels, frames) from ``noise`` (B, ..., frames·hop), with the
        excitation (B, E, frames·hop) of a model that has one; ``prefix`` (B, P) is the audio already made
        for the first P samples (an autoregressive model continues it; a parallel one ignores it)."""


class StudentSynthesis:
    """A ``ParallelWaveNet``: every sample in one parallel pass of the flows over logistic (or normal) noise.

    >>> from wavesynth.parallel import StudentConfig
    >>> student = StudentSynthesis(ParallelWaveNet(StudentConfig(flow_layers=(2,), flow_cycles=(1,))))
    >>> noise = student.draw_noise(512, torch.Generator().manual_seed(0))
    >>> student.synthesize(torch.zeros(1, 80, 2), noise, None, 1.0, torch.zeros(1, 0)).shape
    torch.Size([1, 512])
    """

    auto_bf16 = True  # bf16 is within noise of fp32 on held-out audio (README, "Precision")

    def __init__(self, model: ParallelWaveNet) -> None:
        self.model = model

    @property
    def chunk_context_frames(self) -> tuple[int, int]:
        return self.model.chunk_context_frames

    def draw_noise(self, samples: int, generator: torch.Generator) -> Tensor:
        return self.model.draw_noise((1, samples), generator, dtype=torch.float32)

    def cast(self, precision: str) -> nn.Module:
        """In bf16, all flows but the last: the rounding of flow k's (μ_k, s_k) reaches x scaled by the later
        flows' Π_{j>k} s_j ≪ 1, but the last flow's is not scaled at all (on the shipped 22.05 kHz student
        and 12.8 s of held-out audio, bf16 in every flow raised the log-mel distance by 0.100 dB, the bound
        of issue #16; in all but the last, -0.006). The upsamplers (their phase weights are cast per flow),
        the noise, the flows' composition x ← x·s_k + μ_k and the audio stay float32."""
        self.model.float()
        if precision == "bf16":
            for flow in self.model.flows[:-1]:
                flow.to(torch.bfloat16)
        return self.model

    def synthesize(self, mel: Tensor, noise: Tensor, excitation: Tensor | None, temperature: float,
                   prefix: Tensor) -> Tensor:
        return self.model.sample(mel, temperature, noise=noise, excitation=excitation)


class TeacherSynthesis:
    """A ``WaveNet`` without speakers: sample after sample (cached generation), continuing the prefix."""

    auto_bf16 = False  # sequential generation feeds every sample's rounding back into the next step

    def __init__(self, model: WaveNet) -> None:
        if model.config.n_speakers:
            raise WavesynthError("speaker-conditioned teachers (n_speakers > 0) cannot be used as a Vocoder")
        self.model = model

    @property
    def chunk_context_frames(self) -> tuple[int, int]:
        return self.model.chunk_context_frames

    def draw_noise(self, samples: int, generator: torch.Generator) -> Tensor:
        return self.model.head.draw_noise((1, samples), generator, dtype=torch.float32)

    def cast(self, precision: str) -> nn.Module:
        """In bf16, all but the upsampler and the two output layers, whose rounding reaches the audio
        unscaled; the head's distribution and the audio stay float32."""
        self.model.float()
        if precision == "bf16":
            self.model.to(torch.bfloat16)
            for part in (self.model.upsampler, self.model.output_hidden, self.model.output):
                part.float()
        return self.model

    def synthesize(self, mel: Tensor, noise: Tensor, excitation: Tensor | None, temperature: float,
                   prefix: Tensor) -> Tensor:
        return generate(self.model, mel, temperature=temperature, noise=noise, prefix=prefix,
                        excitation=excitation)


def synthesis_precision(precision: str, model: SynthesisModel, device: torch.device | str) -> str:
    """"fp32" or "bf16" for synthesis by ``model`` on ``device``. "bf16" and "fp32" are taken as asked;
    "auto" is bf16 only for a model with ``auto_bf16`` on hardware with native bf16
    (``train.precision.native_bf16``: CPU avx512_bf16 / amx_bf16, CUDA compute capability >= 8). Anything
    else is a one-line ValueError."""
    resolved = resolve_precision(precision, device)
    return "fp32" if precision == "auto" and not model.auto_bf16 else resolved
