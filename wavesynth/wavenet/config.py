"""WaveNetConfig: the teacher's hyper-parameters, a plain dataclass that validates itself."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import WavesynthError
from ..pitch.excitation import excitation_channels
from .distributions import make_head


@dataclass
class WaveNetConfig:
    """Size and conditioning of a WaveNet teacher.

    ``layers`` blocks in ``cycles`` dilation cycles (dilations 1, 2, ..., 2^(layers/cycles - 1) per
    cycle); ``head`` is one of "mol" (default), "gaussian", "logistic", "mulaw", built with ``head_options``
    (e.g. {"num_components": 10, "log_scale_min": -7.0}); Π ``upsample_scales`` must equal ``hop_length``;
    ``n_speakers`` > 0 adds a speaker embedding of ``speaker_dim`` as global conditioning. ``excitation``
    = "sine" adds a second local conditioning to every residual block: ``harmonics`` sines of the F0 plus
    a voicing channel (``wavesynth.pitch.SineExcitation``); "none" conditions on the mel only.
    """

    layers: int = 24
    cycles: int = 4
    kernel_size: int = 3
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 64
    head: str = "mol"
    head_options: dict[str, Any] = field(default_factory=dict)
    n_mels: int = 80
    hop_length: int = 256
    upsample_scales: tuple[int, ...] = (4, 4, 4, 4)
    n_speakers: int = 0
    speaker_dim: int = 16
    excitation: str = "none"
    harmonics: int = 8

    def __post_init__(self) -> None:
        self.upsample_scales = tuple(self.upsample_scales)
        self.head_options = dict(self.head_options)
        positive = (
            "layers",
            "cycles",
            "residual_channels",
            "gate_channels",
            "skip_channels",
            "n_mels",
            "hop_length",
            "speaker_dim",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise WavesynthError(f"WaveNetConfig.{name} must be a positive integer, got {value!r}")
        if self.layers % self.cycles:
            raise WavesynthError(
                f"WaveNetConfig.layers ({self.layers}) must be a multiple of cycles ({self.cycles})"
            )
        if not isinstance(self.kernel_size, int) or self.kernel_size < 2:
            raise WavesynthError("WaveNetConfig.kernel_size must be an integer >= 2, got "
                                 f"{self.kernel_size!r}")
        if self.gate_channels % 2:
            raise WavesynthError(
                f"WaveNetConfig.gate_channels must be even (tanh and sigmoid halves), "
                f"got {self.gate_channels}"
            )
        if not self.upsample_scales or any(not isinstance(s, int) or s < 1 for s in self.upsample_scales):
            raise WavesynthError(
                f"WaveNetConfig.upsample_scales must be positive integers, got {self.upsample_scales}"
            )
        if math.prod(self.upsample_scales) != self.hop_length:
            raise WavesynthError(
                f"WaveNetConfig.upsample_scales {self.upsample_scales} multiply to "
                f"{math.prod(self.upsample_scales)}, not hop_length {self.hop_length}"
            )
        if not isinstance(self.n_speakers, int) or self.n_speakers < 0:
            raise WavesynthError(f"WaveNetConfig.n_speakers must be an integer >= 0, got {self.n_speakers!r}")
        make_head(self.head, **self.head_options)
        excitation_channels(self.excitation, self.harmonics)

    @property
    def excitation_channels(self) -> int:
        """E: channels of the excitation input (0 without one)."""
        return excitation_channels(self.excitation, self.harmonics)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WaveNetConfig:
        """Inverse of ``to_dict``; unknown keys are a ValueError."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise WavesynthError(f"unknown WaveNetConfig keys: {sorted(unknown)}")
        return cls(**values)
