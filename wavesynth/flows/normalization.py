"""Per-channel affine normalisation flows: batch-norm (RealNVP, MAF) and actnorm (Glow).

Both act on dimension 1 of (batch, C, *spatial) with z = (x - m) · exp(log_scale) per channel,
so log|det ∂z/∂x| = n_positions · Σ_c log_scale_c.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Transform, full_precision


def _per_channel(vector: Tensor, like: Tensor) -> Tensor:
    return vector.view(1, -1, *([1] * (like.dim() - 2)))


def _reduce_dims(x: Tensor) -> list[int]:
    return [d for d in range(x.dim()) if d != 1]


class BatchNorm(Transform):
    """z = (x - μ) / sqrt(σ² + ε) · exp(γ) + β.

    In training mode μ, σ² are the batch statistics (and the log-det is exact for them); in eval
    mode, and always in the inverse, the running averages are used, so the map is a fixed bijection.
    """

    def __init__(self, features: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training:
            dims = _reduce_dims(x)
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = (x - _per_channel(mean, x)) * _per_channel(torch.exp(log_scale), x) + _per_channel(self.beta, x)
        return z, _logabsdet(log_scale, x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        x = (z - _per_channel(self.beta, z)) * _per_channel(torch.exp(-log_scale), z)
        return x + _per_channel(self.running_mean, z), -_logabsdet(log_scale, z)


class ActNorm(Transform):
    """z = (x + b) · exp(log_scale), initialised on the first batch so z has zero mean, unit variance.

    A channel whose first batch has one value, or values that are all equal, gets log_scale = 0 (a unit
    scale) instead of an infinite or NaN one. The ``initialized`` flag is a buffer, so a loaded model is never
    re-initialised.
    """

    def __init__(self, features: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        dims = _reduce_dims(x)
        std = x.std(dims) if x.numel() > x.shape[1] else torch.zeros_like(self.log_scale)
        self.bias.copy_(-x.mean(dims))
        self.log_scale.copy_(torch.where(std > 1e-6, -torch.log(std), 0.0))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not self.initialized:
            self._initialize(x)
        z = (x + _per_channel(self.bias, x)) * _per_channel(torch.exp(self.log_scale), x)
        return z, _logabsdet(self.log_scale, x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * _per_channel(torch.exp(-self.log_scale), z) - _per_channel(self.bias, z)
        return x, -_logabsdet(self.log_scale, z)


def _logabsdet(log_scale: Tensor, x: Tensor) -> Tensor:
    return (math.prod(x.shape[2:]) * full_precision(log_scale).sum()).expand(x.shape[0])
