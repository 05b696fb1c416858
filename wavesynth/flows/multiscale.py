"""Multiscale architecture pieces: squeeze and factor-out with an optional learned prior.

A scale of RealNVP or a level of Glow is ``[..., Squeeze(), ..., FactorOut(...), Unsqueeze]``: the
factored-out half stops being transformed while the other half goes on to the next scale, and the final
unsqueeze puts the latent back in the input's shape. So a whole multiscale model maps (B, C, H, W) to
(B, C, H, W), and ``Flow(StandardNormal((C, H, W)), transforms)`` works unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import WavesynthError
from .base import InverseTransform, Transform, sum_except_batch


class Squeeze(Transform):
    """(B, C, H, W) -> (B, 4C, H/2, W/2) with z[:, 4c + 2i + j, h, w] = x[:, c, 2h + i, 2w + j].

    A permutation of the entries, so log|det| = 0; the inverse is the exact unsqueeze.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise WavesynthError(f"squeeze needs images (B, C, H, W) with even H and W, got {tuple(x.shape)}")
        b, c, h, w = x.shape
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, x.new_zeros(b)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if z.dim() != 4 or z.shape[1] % 4:
            raise WavesynthError(f"unsqueeze needs images (B, 4C, H, W), got {tuple(z.shape)}")
        b, c4, h, w = z.shape
        x = z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)
        return x, z.new_zeros(b)


def Unsqueeze() -> Transform:  # noqa: N802 (a constructor)
    """(B, 4C, H, W) -> (B, C, 2H, 2W): the inverse of :class:`Squeeze`."""
    return InverseTransform(Squeeze())


class FactorOut(Transform):
    """Split x = [z, h] along channels (z the first ⌊C/2⌋) and transform only h further.

    forward: ε = (z − μ(h, c)) / σ(h, c), h' = inner(h), output [ε, h'] with
    log|det| = −Σ log σ(h, c) + log|det ∂h'/∂h| (the Jacobian is block triangular).

    ``prior`` maps h [, context] to 2·⌊C/2⌋ channels (μ, log σ); it is Glow's learned prior
    p(z | h) = N(μ(h), σ(h)²), here made exact against a standard-normal base, so sampling at
    temperature T gives z = μ(h) + σ(h)·T·ε. Without a prior μ = 0, σ = 1 (RealNVP's factor-out).
    """

    def __init__(self, channels: int, inner: Transform, prior: nn.Module | None = None):
        super().__init__()
        if channels < 2:
            raise WavesynthError(f"factor-out needs at least 2 channels, got {channels}")
        self.channels = channels
        self.split = channels // 2
        self.inner = inner
        self.prior = prior

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, h = self._split(x)
        h_out, logabsdet = self.inner(h, context)
        if self.prior is not None:
            mean, log_std = self._prior(h, context)
            z = (z - mean) * (-log_std).exp()
            logabsdet = logabsdet - sum_except_batch(log_std)
        return torch.cat([z, h_out], dim=1), logabsdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        factored, h_out = self._split(z)
        h, logabsdet = self.inner.inverse(h_out, context)
        if self.prior is not None:
            mean, log_std = self._prior(h, context)
            factored = mean + log_std.exp() * factored
            logabsdet = logabsdet + sum_except_batch(log_std)
        return torch.cat([factored, h], dim=1), logabsdet

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise WavesynthError(f"expected {self.channels} channels along dimension 1, got {tuple(x.shape)}")
        return x[:, : self.split], x[:, self.split :]

    def _prior(self, h: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self.prior(h, context)
        shape = (h.shape[0], 2 * self.split, *h.shape[2:])
        if tuple(out.shape) != shape:
            raise ValueError(f"prior returned shape {tuple(out.shape)}, expected {shape}")
        return out[:, : self.split], out[:, self.split :]
