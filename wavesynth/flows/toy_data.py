"""Two-dimensional toy densities for flow experiments (the FFJORD / MAF benchmark set).

Each sampler draws ``n`` points of shape (n, 2) with an optional ``torch.Generator``, so datasets are
reproducible. ``eight_gaussians_log_prob`` is the exact density of ``eight_gaussians``, which gives its
true entropy H = -E[log p(x)] by Monte Carlo.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import WavesynthError

_EIGHT_GAUSSIANS_SCALE = 4.0 / math.sqrt(2.0)
_EIGHT_GAUSSIANS_STD = 0.5 / math.sqrt(2.0)


def _eight_gaussian_centres() -> Tensor:
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    return _EIGHT_GAUSSIANS_SCALE * torch.stack([torch.cos(angles), torch.sin(angles)], 1)


def eight_gaussians(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Equal mixture of 8 isotropic Gaussians (σ = 0.5/√2) on a circle of radius 4/√2."""
    component = torch.randint(0, 8, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return (_eight_gaussian_centres()[component] + _EIGHT_GAUSSIANS_STD * noise).float()


def eight_gaussians_log_prob(x: Tensor) -> Tensor:
    """Exact log p(x) = log (1/8) Σ_k N(x; c_k, σ² I)."""
    d2 = (x.double().unsqueeze(1) - _eight_gaussian_centres()).square().sum(-1)
    var = _EIGHT_GAUSSIANS_STD**2
    log_components = -0.5 * d2 / var - math.log(2 * math.pi * var)
    return torch.logsumexp(log_components, 1) - math.log(8)


def eight_gaussians_entropy(n: int = 1_000_000, generator: torch.Generator | None = None) -> float:
    """Monte Carlo estimate of H = -E[log p(x)] in nats (standard error ~1e-3 at the default n)."""
    return -eight_gaussians_log_prob(eight_gaussians(n, generator)).mean().item()


def two_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.1) -> Tensor:
    """Two interleaved half circles (as sklearn's make_moons), centred and scaled by 2."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = math.pi * torch.rand(n, generator=generator)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], 1) + noise * torch.randn(n, 2, generator=generator)
    return 2 * points


def pinwheel(n: int, generator: torch.Generator | None = None, arms: int = 5) -> Tensor:
    """Five spiral arms: stretched Gaussians rotated by an angle that grows with radius."""
    arm = torch.randint(0, arms, (n,), generator=generator)
    radial = 1 + 0.3 * torch.randn(n, generator=generator)
    tangential = 0.05 * torch.randn(n, generator=generator)
    angle = arm * (2 * math.pi / arms) + 0.25 * torch.exp(radial)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return 2 * torch.stack([cos * radial - sin * tangential, sin * radial + cos * tangential], 1)


def checkerboard(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform density on the 8 dark squares of a 4x4 board spanning [-4, 4]²."""
    x1 = 8 * torch.rand(n, generator=generator) - 4
    column = torch.floor(x1 / 2).long()
    row = 2 * torch.randint(0, 2, (n,), generator=generator) + (column % 2)
    x2 = 2 * row.float() - 4 + 2 * torch.rand(n, generator=generator)
    return torch.stack([x1, x2], 1)


TOY_DENSITIES = {
    "eight_gaussians": eight_gaussians,
    "two_moons": two_moons,
    "pinwheel": pinwheel,
    "checkerboard": checkerboard,
}


def sample_toy2d(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw n points from the named toy density."""
    if name not in TOY_DENSITIES:
        raise WavesynthError(f"unknown toy density {name!r}; choose from {', '.join(TOY_DENSITIES)}")
    return TOY_DENSITIES[name](n, generator)
