"""Ready-made autoregressive density models: MAF and IAF over a standard normal base.

Both stack ``num_layers`` affine autoregressive layers (``MaskedAffineAutoregressive``) with a feature
permutation between consecutive layers, so every dimension gets conditioned on every other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import WavesynthError
from .autoregressive import MaskedAffineAutoregressive
from .base import Transform
from .distributions import StandardNormal
from .flow import Flow
from .normalization import BatchNorm
from .permutations import RandomPermutation, ReversePermutation

PERMUTATIONS = ("reverse", "random")


def _autoregressive_stack(
    direction: str,
    features: int,
    hidden_features: int,
    num_layers: int,
    num_blocks: int,
    context_features: int | None,
    batch_norm: bool,
    permutation: str,
    residual: bool,
    scale: str,
    activation: Callable[[Tensor], Tensor],
) -> list[Transform]:
    if num_layers < 1:
        raise WavesynthError(f"num_layers must be >= 1, got {num_layers}")
    if permutation not in PERMUTATIONS:
        raise WavesynthError(f"unknown permutation {permutation!r}; choose from {', '.join(PERMUTATIONS)}")
    transforms: list[Transform] = []
    for i in range(num_layers):
        if i > 0:
            if batch_norm:
                transforms.append(BatchNorm(features))
            reverse = permutation == "reverse"
            transforms.append(ReversePermutation(features) if reverse else RandomPermutation(features))
        transforms.append(
            MaskedAffineAutoregressive(
                features,
                hidden_features,
                num_blocks,
                context_features,
                direction=direction,
                scale=scale,
                residual=residual,
                activation=activation,
            )
        )
    return transforms


class MAF(Flow):
    """Masked autoregressive flow: log p(x) in one pass, sampling in D passes per layer.

    x -> z through [AR₁, (BatchNorm), π, AR₂, …, AR_L], each AR z = s(x)⊙x + t(x) with (s, t) from a
    MADE of ``num_blocks`` hidden layers of width ``hidden_features`` (or residual blocks with
    ``residual=True``); π reverses or randomly permutes the features. ``batch_norm`` adds the MAF paper's
    batch-norm between layers (batch statistics in training, running averages in eval).
    ``context_features`` makes it a conditional density p(x | c).

    >>> import torch
    >>> flow = MAF(3, hidden_features=16, num_layers=2, context_features=2)
    >>> x, c = torch.randn(5, 3), torch.randn(5, 2)
    >>> tuple(flow.log_prob(x, c).shape), tuple(flow.sample(5, c).shape)  # one sample per context row
    ((5,), (5, 3))
    """

    def __init__(
        self,
        features: int,
        hidden_features: int,
        num_layers: int,
        num_blocks: int = 2,
        context_features: int | None = None,
        batch_norm: bool = False,
        permutation: str = "reverse",
        residual: bool = False,
        scale: str = "bounded",
        activation: Callable[[Tensor], Tensor] = torch.relu_,
    ):
        transforms = _autoregressive_stack(
            "maf",
            features,
            hidden_features,
            num_layers,
            num_blocks,
            context_features,
            batch_norm,
            permutation,
            residual,
            scale,
            activation,
        )
        super().__init__(StandardNormal(features), transforms)


class IAF(Flow):
    """Inverse autoregressive flow: sampling (with its log-density) in one pass, log p(x) in D passes.

    The same stack as ``MAF`` (without batch-norm) with every layer in the IAF direction: the sampling
    map z -> x is x = s(z)⊙z + t(z) per layer, the network reading the noise side. Use it where samples
    are drawn and scored by their own density (variational posteriors, distillation).

    >>> import torch
    >>> flow = IAF(3, hidden_features=16, num_layers=2)
    >>> samples, log_prob = flow.sample_and_log_prob(4)
    >>> tuple(samples.shape), torch.allclose(log_prob, flow.log_prob(samples), atol=1e-4)
    ((4, 3), True)
    """

    def __init__(
        self,
        features: int,
        hidden_features: int,
        num_layers: int,
        num_blocks: int = 2,
        context_features: int | None = None,
        permutation: str = "reverse",
        residual: bool = False,
        scale: str = "bounded",
        activation: Callable[[Tensor], Tensor] = torch.relu_,
    ):
        transforms = _autoregressive_stack(
            "iaf",
            features,
            hidden_features,
            num_layers,
            num_blocks,
            context_features,
            False,
            permutation,
            residual,
            scale,
            activation,
        )
        super().__init__(StandardNormal(features), transforms)
