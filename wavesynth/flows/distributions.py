"""Base distributions p(z) for flows: fixed, parameter-free, with temperature sampling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import full_precision, sum_except_batch


class BaseDistribution(nn.Module):
    """A factorised distribution over events of shape ``shape``."""

    def __init__(self, shape: int | Sequence[int]):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.register_buffer("_device_marker", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(z) summed over the event: (batch, *shape) -> (batch,), in float32 at least."""
        return sum_except_batch(self._log_density(full_precision(z)))

    def sample(self, n: int, context: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """n draws of T·ε with ε ~ p (T is the temperature)."""
        marker = self._device_marker
        return temperature * self._draw((n, *self.shape), marker.device, marker.dtype)

    def _log_density(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _draw(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
        raise NotImplementedError


class StandardNormal(BaseDistribution):
    """z ~ N(0, I): log p(z) = -½ z² - ½ log 2π per dimension."""

    def _log_density(self, z: Tensor) -> Tensor:
        return -0.5 * z.square() - 0.5 * math.log(2 * math.pi)

    def _draw(self, shape, device, dtype):
        return torch.randn(shape, device=device, dtype=dtype)


class StandardLogistic(BaseDistribution):
    """z ~ Logistic(0, 1): log p(z) = -z - 2 softplus(-z) per dimension; z = log u - log(1 - u)."""

    def _log_density(self, z: Tensor) -> Tensor:
        return -z - 2 * F.softplus(-z)

    def _draw(self, shape, device, dtype):
        eps = torch.finfo(dtype).eps
        u = torch.rand(shape, device=device, dtype=dtype).clamp(eps, 1 - eps)
        return torch.log(u) - torch.log1p(-u)
