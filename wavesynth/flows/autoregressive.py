"""Affine autoregressive transforms: MAF (Papamakarios et al., 2017) and IAF (Kingma et al., 2016).

A conditioner gives, for every position i of u (any shape (batch, ...), in some autoregressive order), a raw
log-scale and a shift from the positions before i (and the context), so the map y = s(u)⊙u + t(u) costs
one pass and its inverse u = (y - t)/s costs one pass per position (pass k fixes the k-th position of the
order). log|det ∂y/∂u| = Σᵢ log sᵢ over every non-batch dimension (a triangular Jacobian).

Three stable parameterisations of the scale s from the raw output a:

* ``"bounded"``: y = exp(α)⊙u + μ with α = b·tanh(a / b), so |log s| < b;
* ``"gated"`` (the IAF paper): y = σ⊙u + (1 - σ)⊙m with σ = sigmoid(a + 2), so 0 < s < 1;
* ``"clamped"`` (the Parallel WaveNet student): y = s⊙u + μ with log s = max(a, log_scale_min).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import WavesynthError
from .base import Transform, sum_except_batch
from .made import MADE

SCALES = ("bounded", "gated", "clamped")
DIRECTIONS = ("maf", "iaf")
_GATE_BIAS = 2.0


class AutoregressiveAffine(Transform):
    """An affine autoregressive transform whose one-pass direction is chosen by ``direction``.

    ``"maf"``: forward x -> z is the one-pass map, z = s(x)⊙x + t(x): density in one pass, sampling in D.
    ``"iaf"``: inverse z -> x is the one-pass map, x = s(z)⊙z + t(z): sampling in one pass, density in D.
    With the same weights an ``"iaf"`` transform is exactly the inverse of a ``"maf"`` one.

    The conditioner is pluggable: a subclass implements ``conditioner(u, context) -> (a, t)``, the raw
    log-scale and the shift of every position of u, each shaped like u, from the strict past of u (MADE
    for vectors in ``MaskedAffineAutoregressive``; a causal convolution stack for sequences (batch, T)).
    """

    def __init__(
        self,
        direction: str = "maf",
        scale: str = "bounded",
        max_log_scale: float = 5.0,
        log_scale_min: float = -7.0,
    ):
        super().__init__()
        if direction not in DIRECTIONS:
            raise WavesynthError(f"unknown direction {direction!r}; choose from {', '.join(DIRECTIONS)}")
        if scale not in SCALES:
            raise WavesynthError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
        if max_log_scale <= 0:
            raise WavesynthError(f"max_log_scale must be positive, got {max_log_scale}")
        self.direction = direction
        self.scale = scale
        self.max_log_scale = max_log_scale
        self.log_scale_min = log_scale_min

    def conditioner(self, u: Tensor, context: object = None) -> tuple[Tensor, Tensor]:
        """(raw log-scale a, shift t), each shaped like u; position i sees only the positions before it."""
        raise NotImplementedError

    def forward(self, x: Tensor, context: object = None) -> tuple[Tensor, Tensor]:
        if self.direction == "maf":
            return self._one_pass(x, context)
        return self._sequential(x, context)

    def inverse(self, z: Tensor, context: object = None) -> tuple[Tensor, Tensor]:
        if self.direction == "maf":
            return self._sequential(z, context)
        return self._one_pass(z, context)

    def log_scale_and_shift(self, u: Tensor, context: object = None) -> tuple[Tensor, Tensor]:
        """(log s, t-parameter) of y = s(u)⊙u + t(u): (α, μ) when bounded, (log σ, m) when gated,
        (max(a, log_scale_min), μ) when clamped."""
        raw, shift = self.conditioner(u, context)
        if self.scale == "bounded":
            return self.max_log_scale * torch.tanh(raw / self.max_log_scale), shift
        if self.scale == "clamped":
            return raw.clamp(min=self.log_scale_min), shift
        return F.logsigmoid(raw + _GATE_BIAS), shift

    def _one_pass(self, u: Tensor, context: object) -> tuple[Tensor, Tensor]:
        """y = s(u)⊙u + t(u) and log|det ∂y/∂u| = Σ log s."""
        log_scale, shift = self.log_scale_and_shift(u, context)
        centred = u - shift if self.scale == "gated" else u  # y = m + σ (u - m), or y = μ + s u
        return torch.addcmul(shift, centred, torch.exp(log_scale)), sum_except_batch(log_scale)

    def _sequential(self, y: Tensor, context: object) -> tuple[Tensor, Tensor]:
        """u with y = s(u)⊙u + t(u), by one pass per position (from u = 0); log|det ∂u/∂y| = -Σ log s(u)."""
        u = torch.zeros_like(y)
        for _ in range(y[0].numel()):
            log_scale, shift = self.log_scale_and_shift(u, context)
            u = (y - shift) * torch.exp(-log_scale)
            if self.scale == "gated":
                u = u + shift
        return u, -sum_except_batch(log_scale)


class MaskedAffineAutoregressive(AutoregressiveAffine):
    """An affine autoregressive layer over vectors (batch, D) whose conditioner is a MADE.

    >>> import torch
    >>> layer = MaskedAffineAutoregressive(3, 8, direction="iaf")
    >>> z = torch.randn(4, 3)
    >>> x, logabsdet = layer.inverse(z)  # one pass
    >>> z_back, minus_logabsdet = layer(x)  # three passes
    >>> torch.allclose(z_back, z, atol=1e-6), tuple(logabsdet.shape)
    (True, (4,))
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
        super().__init__(direction, scale, max_log_scale)
        self.features = features
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

    def conditioner(self, u: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raw, shift = self.made(u, context).unbind(1)
        return raw, shift
