"""The WaveNet teacher: layers, output heads, the model and its cached autoregressive generation."""

from .config import WaveNetConfig
from .distributions import (
    HEADS,
    DiscretizedMixtureOfLogistics,
    Gaussian,
    LocationScale,
    Logistic,
    MuLawCategorical,
    OutputHead,
    make_head,
    mulaw_decode,
    mulaw_encode,
    quantize,
)
from .generation import GenerationState, generate
from .layers import CausalConv1d, ConditioningUpsampler, ResidualBlock, WaveNetStack, dilations, shift_right
from .model import WaveNet

__all__ = [
    "HEADS",
    "CausalConv1d",
    "ConditioningUpsampler",
    "DiscretizedMixtureOfLogistics",
    "Gaussian",
    "GenerationState",
    "Logistic",
    "MuLawCategorical",
    "LocationScale",
    "OutputHead",
    "ResidualBlock",
    "WaveNet",
    "WaveNetConfig",
    "WaveNetStack",
    "dilations",
    "generate",
    "make_head",
    "mulaw_decode",
    "mulaw_encode",
    "quantize",
    "shift_right",
]
