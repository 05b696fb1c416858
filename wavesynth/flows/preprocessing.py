"""Pre-processing for image flows: uniform dequantisation, the logit transform, bits per dimension.

Discrete data k ∈ {0..K−1}^D becomes x = (k + u)/K ∈ [0, 1)^D with u ~ U[0, 1)^D. A density p on the
unit cube then bounds the discrete likelihood: log P(k) ≥ E_u[log p(x)] − D log K, which
:func:`bits_per_dim` reports in bits per dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import WavesynthError
from .base import Transform, sum_except_batch


def dequantize(x: Tensor, num_bins: int = 256, generator: torch.Generator | None = None) -> Tensor:
    """x = (k + u) / K with u ~ U[0, 1): integer levels k ∈ {0..K−1} -> [0, 1) (float32 for ints)."""
    if num_bins < 2:
        raise WavesynthError(f"num_bins must be >= 2, got {num_bins}")
    k = x if x.is_floating_point() else x.float()
    if not bool(((k == k.round()) & (k >= 0) & (k < num_bins)).all()):
        raise WavesynthError(f"dequantize expects integer levels in 0..{num_bins - 1}")
    u = torch.rand(k.shape, generator=generator, dtype=k.dtype, device=k.device)
    return (k + u) / num_bins


class Logit(Transform):
    """y = logit(p), p = α + (1 − 2α) x, for data x ∈ [0, 1] (RealNVP's pre-processing).

    log|det ∂y/∂x| = Σ [log(1 − 2α) − log p − log(1 − p)]; inverse x = (sigmoid(y) − α) / (1 − 2α).
    α > 0 keeps y finite on [0, 1]; the map is a bijection from (−α, 1 − α)/(1 − 2α) to ℝ, which is
    where samples land.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise WavesynthError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        if not bool(((p > 0) & (p < 1)).all()):
            low, high = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
            raise WavesynthError(f"Logit expects data in [0, 1] (its domain is ({low:.4g}, {high:.4g}))")
        y = torch.log(p) - torch.log1p(-p)
        return y, self._logabsdet(y)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        return x, -self._logabsdet(z)

    def _logabsdet(self, y: Tensor) -> Tensor:
        # With p = sigmoid(y): −log p − log(1 − p) = −logsigmoid(y) − logsigmoid(−y), stable for any y.
        per_entry = math.log(1 - 2 * self.alpha) - F.logsigmoid(y) - F.logsigmoid(-y)
        return sum_except_batch(per_entry)


def bits_per_dim(log_prob: Tensor, num_dims: int, num_bins: int = 256, data_range: float = 1.0) -> Tensor:
    """−log₂ P(k) / D for a density log p(x) over data scaled to an interval of width ``data_range``.

    Each of the K bins has width Δ = data_range / K, so log P(k) ≈ log p(x) + D log Δ and
    bits/dim = −(log p(x) + D log Δ) / (D ln 2); for x ∈ [0, 1] this is (−log p(x)/D + log K) / ln 2.
    """
    if num_dims < 1 or num_bins < 2 or data_range <= 0:
        raise WavesynthError(
            f"need num_dims >= 1, num_bins >= 2, data_range > 0; got {num_dims}, {num_bins}, {data_range}"
        )
    log_bin_width = math.log(data_range / num_bins)
    return -(log_prob / num_dims + log_bin_width) / math.log(2)
