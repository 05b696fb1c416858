"""wavesynth.flows: normalising flows (knows nothing about audio).

Convention: ``forward(x, context)`` maps data to noise and returns ``(z, logabsdet)``;
``inverse(z, context)`` maps noise to data and returns ``(x, logabsdet)``.
"""

from .autoregressive import MaskedAffineAutoregressive
from .autoregressive_models import IAF, MAF
from .base import CompositeTransform, InverseTransform, Transform
from .distributions import StandardLogistic, StandardNormal
from .flow import Flow
from .linear import InvertibleConv1x1, InvertibleLinear, LULinear
from .made import MADE
from .normalization import ActNorm, BatchNorm
from .permutations import Permutation, RandomPermutation, ReversePermutation

__all__ = [
    "ActNorm",
    "BatchNorm",
    "CompositeTransform",
    "Flow",
    "IAF",
    "InverseTransform",
    "InvertibleConv1x1",
    "InvertibleLinear",
    "LULinear",
    "MADE",
    "MAF",
    "MaskedAffineAutoregressive",
    "Permutation",
    "RandomPermutation",
    "ReversePermutation",
    "StandardLogistic",
    "StandardNormal",
    "Transform",
]
