"""The affine autoregressive transform of MAF (Papamakarios et al., 2017) and IAF (Kingma et al., 2016).

One MADE gives, for each dimension i, a shift and a scale from the inputs before i, so the
autoregressive map y = s(u)⊙u + t(u) costs one pass and its inverse u = (y - t)/s costs D passes
(pass k fixes dimension k of the ordering). log|det ∂y/∂u| = Σᵢ log sᵢ (a triangular Jacobian).

Two stable parameterisations of the scale, both the identity (or near it) at initialisation:

* ``"bounded"``: y = exp(α)⊙u + μ with α = b·tanh(a / b), so |log s| < b;
* ``"gated"`` (the IAF paper): y = σ⊙u + (1 - σ)⊙m with σ = sigmoid(a + 2), so 0 < s < 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import WavesynthError
from .base import Transform, full_precision
from .made import MADE

SCALES = ("bounded", "gated")
DIRECTIONS = ("maf", "iaf")
_GATE_BIAS = 2.0


class MaskedAffineAutoregressive(Transform):
    """An affine autoregressive layer whose one-pass direction is chosen by ``direction``.

    ``"maf"``: forward x -> z is the one-pass map, z = s(x)⊙x + t(x): density in one pass, sampling in D.
    ``"iaf"``: inverse z -> x is the one-pass map, x = s(z)⊙z + t(z): sampling in one pass, density in D.
    With the same weights an ``"iaf"`` layer is exactly the inverse of a ``"maf"`` layer.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int,
        num_blocks: int = 2,
        context_features: int | None = None,
        ordering: str | Tensor = "natural",
        direction: str = "maf",
        scale: str = "bounded",
        max_log_scale: float = 5.0,
        residual: bool = False,
        activation: Callable[[Tensor], Tensor] = torch.relu_,
    ):
        super().__init__()
        if direction not in DIRECTIONS:
            raise WavesynthError(f"unknown direction {direction!r}; choose from {', '.join(DIRECTIONS)}")
        if scale not in SCALES:
            raise WavesynthError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
        if max_log_scale <= 0:
            raise WavesynthError(f"max_log_scale must be positive, got {max_log_scale}")
        self.features = features
        self.direction = direction
        self.scale = scale
        self.max_log_scale = max_log_scale
        self.made = MADE(
            features,
            hidden_features,
            num_blocks,
            output_multiplier=2,
            context_features=context_features,
            ordering=ordering,
            residual=residual,
            activation=activation,
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.direction == "maf":
            return self._one_pass(x, context)
        return self._sequential(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.direction == "maf":
            return self._sequential(z, context)
        return self._one_pass(z, context)

    def _scale_and_shift(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """(log s, t-parameter) from the MADE: (α, μ) when bounded, (log σ, m) when gated."""
        raw, shift = self.made(u, context).unbind(1)
        if self.scale == "bounded":
            return self.max_log_scale * torch.tanh(raw / self.max_log_scale), shift
        return F.logsigmoid(raw + _GATE_BIAS), shift

    def _one_pass(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """y = s(u)⊙u + t(u) and log|det ∂y/∂u| = Σ log s."""
        log_scale, shift = self._scale_and_shift(u, context)
        centred = u if self.scale == "bounded" else u - shift  # y = μ + e^α u, or y = m + σ (u - m)
        return torch.addcmul(shift, centred, torch.exp(log_scale)), full_precision(log_scale).sum(1)

    def _sequential(self, y: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """u with y = s(u)⊙u + t(u), by D passes; log|det ∂u/∂y| = -Σ log s(u).

        The first pass starts from u = 0, so without a context it is one row, broadcast over the batch.
        """
        self.made.check_input(y, context)
        u = y.new_zeros(y.shape[0] if context is not None else 1, self.features)
        for _ in range(self.features):
            log_scale, shift = self._scale_and_shift(u, context)
            u = (y - shift) * torch.exp(-log_scale)
            if self.scale == "gated":
                u = u + shift
        return u, -full_precision(log_scale).sum(1).expand(y.shape[0])
