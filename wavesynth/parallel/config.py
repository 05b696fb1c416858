"""StudentConfig: the Parallel WaveNet student's hyper-parameters, a plain dataclass that validates itself."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import WavesynthError
from ..model_config import ModelConfig
from ..pitch.excitation import excitation_channels


@dataclass
class StudentConfig(ModelConfig):
    """Size and conditioning of an IAF student.

    Flow k is a WaveNet-like stack of ``flow_layers[k]`` gated residual layers (no skip path) in
    ``flow_cycles[k]`` dilation cycles (dilations 1, 2, ..., 2^(layers/cycles - 1) per cycle), with
    ``channels`` residual and ``gate_channels`` gate channels (tanh and sigmoid halves). The defaults are
    Parallel WaveNet's: 4 flows of 10, 10, 10 and 30 layers (dilations 1..512, the last one 3 cycles),
    64 channels, logistic noise. ``noise`` = "gaussian" gives ClariNet's student (z ~ N(0, 1)).
    ``shared_upsampler`` uses one mel upsampler for all flows (else one per flow); Π ``upsample_scales``
    must equal ``hop_length``. Each flow's log-scale log s_k is clamped below at ``log_scale_min``.
    ``excitation`` = "sine" adds ``harmonics`` sines of the F0 and a voicing channel as a second local
    conditioning of every residual layer of every flow (``wavesynth.pitch.SineExcitation``);
    ``excitation_at`` = "flow_input" instead adds it once per flow, by a 1x1 convolution at the flow's input
    (the cheaper variant, for comparison).
    """

    flow_layers: tuple[int, ...] = (10, 10, 10, 30)
    flow_cycles: tuple[int, ...] = (1, 1, 1, 3)
    kernel_size: int = 3
    channels: int = 64
    gate_channels: int = 128
    noise: Literal["logistic", "gaussian"] = "logistic"
    n_mels: int = 80
    hop_length: int = 256
    upsample_scales: tuple[int, ...] = (4, 4, 4, 4)
    shared_upsampler: bool = True
    log_scale_min: float = -7.0
    excitation: str = "none"
    harmonics: int = 8
    excitation_at: Literal["blocks", "flow_input"] = "blocks"

    def __post_init__(self) -> None:
        self.flow_layers = tuple(self.flow_layers)
        self.flow_cycles = tuple(self.flow_cycles)
        self.upsample_scales = tuple(self.upsample_scales)
        self.require_ints(["channels", "gate_channels", "n_mels", "hop_length"])
        if not self.flow_layers or any(not isinstance(n, int) or n < 1 for n in self.flow_layers):
            raise WavesynthError("StudentConfig.flow_layers must be positive integers, got "
                                 f"{self.flow_layers}")
        if len(self.flow_cycles) != len(self.flow_layers):
            raise WavesynthError(
                f"StudentConfig.flow_cycles {self.flow_cycles} must give one cycle count per flow "
                f"({len(self.flow_layers)} flows)"
            )
        for layers, cycles in zip(self.flow_layers, self.flow_cycles, strict=True):
            if not isinstance(cycles, int) or cycles < 1 or layers % cycles:
                raise WavesynthError(
                    f"StudentConfig.flow_cycles: each flow's layers must be a multiple of its cycles, got "
                    f"{layers} layers in {cycles} cycles"
                )
        self.check_gated_convolution()
        if self.noise not in ("logistic", "gaussian"):
            raise WavesynthError(f"StudentConfig.noise must be 'logistic' or 'gaussian', got {self.noise!r}")
        self.check_upsampling()
        if not math.isfinite(self.log_scale_min):
            raise WavesynthError(f"StudentConfig.log_scale_min must be finite, got {self.log_scale_min!r}")
        excitation_channels(self.excitation, self.harmonics)
        if self.excitation_at not in ("blocks", "flow_input"):
            raise WavesynthError("StudentConfig.excitation_at must be 'blocks' or 'flow_input', got "
                                 f"{self.excitation_at!r}")

    @property
    def excitation_channels(self) -> int:
        """E: channels of the excitation input (0 without one)."""
        return excitation_channels(self.excitation, self.harmonics)
