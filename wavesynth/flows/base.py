"""The transform contract shared by every flow.

A transform is an invertible map between data x and noise z. ``forward(x, context)`` is the
normalising direction x -> z and returns ``(z, log|det ∂z/∂x|)``; ``inverse(z, context)`` maps
z -> x and returns ``(x, log|det ∂x/∂z|)``. Log-determinants have shape ``(batch,)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


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
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, logabsdet = transform(x, context)
            total = total + logabsdet
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[0])
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
    """Σ over every dimension but the first: (batch, ...) -> (batch,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def check_input(x: Tensor, event_shape: tuple[int, ...], name: str = "input") -> None:
    """Raise ValueError unless x is a finite tensor of shape (batch, *event_shape)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(event_shape) + 1 or tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, event_shape))})"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
