"""Invertible linear maps along dimension 1: LU-linear for vectors, Glow's 1x1 convolution for images.

For x of shape (batch, C, *spatial), z[:, :, p] = W x[:, :, p] (+ b) at every position p, so
log|det ∂z/∂x| = n_positions · log|det W|.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import WavesynthError
from .base import Transform


def random_rotation(
    features: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """An orthogonal matrix from the QR decomposition of a Gaussian matrix (Glow's initialisation), computed
    in float64 and returned in ``dtype`` (torch's default dtype when None)."""
    q, r = torch.linalg.qr(torch.randn(features, features, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(dtype or torch.get_default_dtype())


class InvertibleLinear(Transform):
    """z = W x + b along dimension 1.

    With ``lu=True`` W = P L (U + diag(sign(s)·exp(log|s|))): P a fixed permutation, L unit lower
    triangular, U strictly upper triangular, so log|det W| = Σ log|s| costs O(C). With ``lu=False``
    W is a dense learned matrix and log|det W| comes from ``slogdet`` (O(C³)).
    """

    def __init__(self, features: int, lu: bool = True, bias: bool = True, init: str = "rotation"):
        super().__init__()
        if init not in ("rotation", "identity"):
            raise WavesynthError(f"init must be 'rotation' or 'identity', got {init!r}")
        dtype = torch.get_default_dtype()
        if init == "rotation":
            weight = random_rotation(features, dtype=dtype)
        else:
            weight = torch.eye(features, dtype=dtype)
        self.features = features
        self.lu = lu
        if lu:
            permutation, lower, upper = torch.linalg.lu(weight)
            s = torch.diagonal(upper)
            self.register_buffer("permutation", permutation)
            self.register_buffer("sign_s", torch.sign(s))
            self.register_buffer("lower_mask", torch.tril(torch.ones(features, features, dtype=dtype), -1))
            self.lower = nn.Parameter(lower)
            self.upper = nn.Parameter(torch.triu(upper, 1))
            self.log_abs_s = nn.Parameter(torch.log(torch.abs(s)))
        else:
            self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(features)) if bias else None

    def _lu_factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.features, dtype=self.lower.dtype, device=self.lower.device)
        mask = self.lower_mask.to(self.lower.dtype)  # the buffers follow the parameters' dtype at use
        lower = self.lower * mask + eye
        upper = self.upper * mask.T + torch.diag(self.sign_s.to(self.lower.dtype) * torch.exp(self.log_abs_s))
        return lower, upper

    def _permutation(self) -> Tensor:
        return self.permutation.to(self.lower.dtype)

    def matrix(self) -> Tensor:
        """W."""
        if not self.lu:
            return self.weight
        lower, upper = self._lu_factors()
        return self._permutation() @ lower @ upper

    def inverse_matrix(self) -> Tensor:
        """W⁻¹ = U⁻¹ L⁻¹ Pᵀ by triangular solves when LU-parameterised."""
        if not self.lu:
            return torch.linalg.inv(self.weight)
        lower, upper = self._lu_factors()
        pt = self._permutation().T
        l_inv_pt = torch.linalg.solve_triangular(lower, pt, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, l_inv_pt, upper=True)

    def log_abs_det_matrix(self) -> Tensor:
        """log|det W|."""
        return self.log_abs_s.sum() if self.lu else torch.linalg.slogdet(self.weight)[1]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = self._multiply(self.matrix(), x)
        if self.bias is not None:
            z = z + self._broadcast(self.bias, x)
        return z, self._logabsdet(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.bias is not None:
            z = z - self._broadcast(self.bias, z)
        return self._multiply(self.inverse_matrix(), z), -self._logabsdet(z)

    def _multiply(self, matrix: Tensor, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.features:
            raise WavesynthError(f"expected {self.features} features along dimension 1, got {tuple(x.shape)}")
        return torch.einsum("ij,bj...->bi...", matrix, x)

    @staticmethod
    def _broadcast(vector: Tensor, like: Tensor) -> Tensor:
        return vector.view(1, -1, *([1] * (like.dim() - 2)))

    def _logabsdet(self, x: Tensor) -> Tensor:
        positions = math.prod(x.shape[2:])
        return (positions * self.log_abs_det_matrix()).expand(x.shape[0])


class LULinear(InvertibleLinear):
    """LU-parameterised z = W x + b for vectors, initialised at the identity."""

    def __init__(self, features: int, bias: bool = True, init: str = "identity"):
        super().__init__(features, lu=True, bias=bias, init=init)


class InvertibleConv1x1(InvertibleLinear):
    """Glow's invertible 1x1 convolution over channels, no bias, initialised from a random rotation."""

    def __init__(self, channels: int, lu: bool = True):
        super().__init__(channels, lu=lu, bias=False, init="rotation")
