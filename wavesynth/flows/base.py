"""The transform contract shared by every flow.

A transform is an invertible map between data x and noise z. ``forward(x, context)`` is the
normalising direction x -> z and returns ``(z, log|det ∂z/∂x|)``; ``inverse(z, context)`` maps
z -> x and returns ``(x, log|det ∂x/∂z|)``. Log-determinants have shape ``(batch,)``.

Under bf16 autocast the networks inside a flow compute in bf16, but log-determinants and log-densities
are summed in float32 (``full_precision``, ``float32_region``): a bf16 sum of a few thousand terms is off
by whole nats.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..errors import WavesynthError

Fn = TypeVar("Fn", bound=Callable[..., Any])

_HALF = (torch.bfloat16, torch.float16)


def full_precision(x: Tensor) -> Tensor:
    """``x`` as float32 if it is a 16-bit float tensor (as autocast makes them), else ``x`` itself (so
    float32 and float64 stay as they are). Differentiable."""
    return x.float() if x.dtype in _HALF else x


def _upcast(value: Any) -> Any:
    if isinstance(value, Tensor):
        return full_precision(value)
    if isinstance(value, tuple | list):
        return type(value)(_upcast(v) for v in value)
    return value


def float32_region(fn: Fn) -> Fn:
    """Decorator: ``fn`` runs with autocast off and its 16-bit float tensor arguments (also inside tuples
    and lists) cast to float32, so it computes in float32 inside a bf16 autocast region, and exactly as
    before outside one. For log-probabilities, entropies, KL terms and spectral losses."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _upcast(args), {k: _upcast(v) for k, v in kwargs.items()}
        with ExitStack() as stack:
            for device_type in ("cpu", "cuda"):
                if torch.is_autocast_enabled(device_type):
                    stack.enter_context(torch.autocast(device_type, enabled=False))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Transform(nn.Module):
    """An invertible map x -> z with a tractable log|det|."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class CompositeTransform(Transform):
    """f = f_K ∘ … ∘ f_1: applies the transforms in order; log-determinants add."""

    def __init__(self, transforms: Iterable[Transform]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0], dtype=torch.promote_types(x.dtype, torch.float32))
        for transform in self.transforms:
            x, logabsdet = transform(x, context)
            total = total + logabsdet
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[0], dtype=torch.promote_types(z.dtype, torch.float32))
        for transform in reversed(self.transforms):
            z, logabsdet = transform.inverse(z, context)
            total = total + logabsdet
        return z, total


class InverseTransform(Transform):
    """f⁻¹ as a transform: its forward is f.inverse and its inverse is f.forward."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform(z, context)


def sum_except_batch(x: Tensor) -> Tensor:
    """Σ over every dimension but the first: (batch, ...) -> (batch,), in float32 at least."""
    return full_precision(x).reshape(x.shape[0], -1).sum(dim=1)


def check_input(x: Tensor, event_shape: tuple[int, ...], name: str = "input") -> None:
    """Raise ValueError unless x is a finite tensor of shape (batch, *event_shape)."""
    if not isinstance(x, Tensor):
        raise WavesynthError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(event_shape) + 1 or tuple(x.shape[1:]) != tuple(event_shape):
        raise WavesynthError(
            f"{name} has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, event_shape))})"
        )
    if not torch.isfinite(x).all():
        raise WavesynthError(f"{name} contains non-finite values (NaN or inf)")
