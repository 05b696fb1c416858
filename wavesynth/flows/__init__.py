"""wavesynth.flows: normalising flows (knows nothing about audio).

Convention: ``forward(x, context)`` maps data to noise and returns ``(z, logabsdet)``;
``inverse(z, context)`` maps noise to data and returns ``(x, logabsdet)``.
"""

from .autoregressive import AutoregressiveAffine, MaskedAffineAutoregressive
from .autoregressive_models import IAF, MAF
from .base import CompositeTransform, InverseTransform, Transform
from .conditioners import MLP, ConvNet
from .coupling import AdditiveCoupling, AffineCoupling, Coupling, DiagonalScaling, coupling_mask
from .coupling_models import NICE, Glow, RealNVP
from .distributions import StandardLogistic, StandardNormal
from .flow import Flow
from .linear import InvertibleConv1x1, InvertibleLinear, LULinear
from .made import MADE
from .multiscale import FactorOut, Squeeze, Unsqueeze
from .normalization import ActNorm, BatchNorm
from .permutations import Permutation, RandomPermutation, ReversePermutation
from .preprocessing import Logit, bits_per_dim, dequantize
from .vae import VAE

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "AutoregressiveAffine",
    "BatchNorm",
    "CompositeTransform",
    "ConvNet",
    "Coupling",
    "DiagonalScaling",
    "FactorOut",
    "Flow",
    "Glow",
    "IAF",
    "InverseTransform",
    "InvertibleConv1x1",
    "InvertibleLinear",
    "LULinear",
    "Logit",
    "MADE",
    "MAF",
    "MLP",
    "MaskedAffineAutoregressive",
    "NICE",
    "Permutation",
    "RandomPermutation",
    "RealNVP",
    "ReversePermutation",
    "Squeeze",
    "StandardLogistic",
    "StandardNormal",
    "Transform",
    "Unsqueeze",
    "VAE",
    "bits_per_dim",
    "coupling_mask",
    "dequantize",
]
