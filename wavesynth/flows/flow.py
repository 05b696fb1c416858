"""Flow: a density model p(x) = p_z(f(x)) · |det ∂f/∂x| built from a base and transforms."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..errors import WavesynthError
from .base import CompositeTransform, Transform, check_input
from .distributions import BaseDistribution


class Flow(nn.Module):
    """log p(x) = log p_z(z) + log|det ∂z/∂x| with z = f(x); sampling runs x = f⁻¹(T·ε).

    ``context`` (optional) is passed to every transform, giving a conditional density p(x | c): a tensor,
    or a tuple of them (batch first; ``None`` entries allowed after the first) for transforms that take
    several. When sampling with a context of batch size B, ``n`` must equal B (one sample per row).

    >>> import torch
    >>> from wavesynth.flows import ActNorm, LULinear, StandardNormal
    >>> flow = Flow(StandardNormal(2), [ActNorm(2), LULinear(2)])
    >>> tuple(flow.log_prob(torch.randn(8, 2)).shape), tuple(flow.sample(3).shape)
    ((8,), (3, 2))
    """

    def __init__(self, base: BaseDistribution, transforms: Transform | Sequence[Transform]):
        super().__init__()
        self.base = base
        self.transform = transforms if isinstance(transforms, Transform) else CompositeTransform(transforms)

    def log_prob(self, x: Tensor, context: Tensor | tuple | None = None) -> Tensor:
        """log p(x | context), shape (batch,)."""
        z, logabsdet = self.transform_to_noise(x, context)
        return self.base.log_prob(z) + logabsdet

    def transform_to_noise(self, x: Tensor, context: Tensor | tuple | None = None) -> tuple[Tensor, Tensor]:
        """z = f(x) and log|det ∂z/∂x|, after checking x."""
        check_input(x, self.event_shape, "x")
        self._check_context(context, x.shape[0])
        return self.transform(x, context)

    def sample(self, n: int, context: Tensor | tuple | None = None, temperature: float = 1.0) -> Tensor:
        """n samples x = f⁻¹(T·ε), ε ~ base; temperature T < 1 trades diversity for fidelity."""
        return self.sample_and_log_prob(n, context, temperature)[0]

    def sample_and_log_prob(
        self, n: int, context: Tensor | tuple | None = None, temperature: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Samples and their (untempered) model log-density: log p_z(z) - log|det ∂x/∂z|."""
        if n < 1:
            raise WavesynthError(f"number of samples must be positive, got {n}")
        self._check_context(context, n)
        z = self.base.sample(n, temperature=temperature)
        x, logabsdet = self.transform.inverse(z, context)
        return x, self.base.log_prob(z) - logabsdet

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.base.shape

    @staticmethod
    def _check_context(context: Tensor | tuple | None, batch: int) -> None:
        first = context[0] if isinstance(context, tuple) else context
        if first is not None and first.shape[0] != batch:
            raise WavesynthError(f"context has batch size {first.shape[0]}, expected {batch}")
