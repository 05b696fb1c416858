"""Permutations of the feature (or channel) dimension: volume preserving, log|det| = 0."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import WavesynthError
from .base import Transform


class Permutation(Transform):
    """z = x[:, π] along dimension 1 (features of vectors, channels of images)."""

    def __init__(self, permutation: Tensor):
        super().__init__()
        permutation = torch.as_tensor(permutation, dtype=torch.long)
        if not torch.equal(permutation.sort().values, torch.arange(len(permutation))):
            raise WavesynthError("permutation must contain each index 0..n-1 exactly once")
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._permute(x, self.permutation)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._permute(z, self.inverse_permutation)

    def _permute(self, x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] != len(index):
            raise WavesynthError(f"expected {len(index)} features along dimension 1, got {x.shape[1]}")
        return x.index_select(1, index), x.new_zeros(x.shape[0])


class ReversePermutation(Permutation):
    """z = x[:, ::-1]: reverses the order of the features."""

    def __init__(self, features: int):
        super().__init__(torch.arange(features - 1, -1, -1))


class RandomPermutation(Permutation):
    """A permutation drawn once at construction (fixed afterwards; saved in the state dict)."""

    def __init__(self, features: int, generator: torch.Generator | None = None):
        super().__init__(torch.randperm(features, generator=generator))
