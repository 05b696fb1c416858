"""WaveNetConfig: the teacher's hyper-parameters, a plain dataclass that validates itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import WavesynthError
from ..model_config import ModelConfig
from ..pitch.excitation import excitation_channels
from .distributions import make_head


@dataclass
class WaveNetConfig(ModelConfig):
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
        self.require_ints(["layers", "cycles", "residual_channels", "gate_channels", "skip_channels",
                           "n_mels", "hop_length", "speaker_dim"])
        if self.layers % self.cycles:
            raise WavesynthError(
                f"WaveNetConfig.layers ({self.layers}) must be a multiple of cycles ({self.cycles})"
            )
        self.check_gated_convolution()
        self.check_upsampling()
        self.require_ints(["n_speakers"], minimum=0)
        make_head(self.head, **self.head_options)
        excitation_channels(self.excitation, self.harmonics)

    @property
    def excitation_channels(self) -> int:
        """E: channels of the excitation input (0 without one)."""
        return excitation_channels(self.excitation, self.harmonics)
