"""Coupling layers (NICE, RealNVP, Glow) and NICE's diagonal scaling.

A binary mask m over the event splits x into a conditioning part, passed through unchanged, and a
transformed part: z = m ⊙ x + (1 − m) ⊙ g(x; θ) with θ = NN(m ⊙ x, c). The Jacobian is triangular, so
log|det ∂z/∂x| = Σ (1 − m) ⊙ log|∂g/∂x|:

    additive (NICE)          g = x + t        log|det| = 0
    affine (RealNVP, Glow)   g = x ⊙ s + t    log|det| = Σ (1 − m) ⊙ log s
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WavesynthError
from .base import Transform, sum_except_batch
from .conditioners import check_context

MASKS = ("half", "alternating", "checkerboard")

# log s as a function of the conditioner output h, bounded so that s never explodes.
LOG_SCALES = {
    "sigmoid": lambda h: F.logsigmoid(h + 2.0),  # Glow: s = sigmoid(h + 2) ∈ (0, 1)
    "tanh": torch.tanh,  # RealNVP-style bounded log-scale: log s ∈ (−1, 1)
}


def event_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    """(D,) for an int, the tuple itself otherwise."""
    return (shape,) if isinstance(shape, int) else tuple(shape)


def check_event_shape(x: Tensor, shape: tuple[int, ...], name: str = "input") -> None:
    """Raise ValueError unless x has shape (batch, *shape)."""
    if tuple(x.shape[1:]) != shape or x.dim() != len(shape) + 1:
        raise WavesynthError(f"{name} has shape {tuple(x.shape)}, expected (batch, "
                             f"{', '.join(map(str, shape))})")


def coupling_mask(shape: int | Sequence[int], kind: str = "half", flip: bool = False) -> Tensor:
    """Boolean mask of the event shape, True on the conditioning (unchanged) part.

    ``half``: the first ⌊n/2⌋ entries of dimension 1 (features of a vector; channels of an image, which
    is RealNVP's channel-wise mask and Glow's split); ``alternating``: even indices of dimension 1;
    ``checkerboard``: positions with i + j even, for images (C, H, W). ``flip`` swaps the two parts.
    """
    shape = event_shape(shape)
    if kind not in MASKS:
        raise WavesynthError(f"unknown mask {kind!r}; choose from {', '.join(MASKS)}")
    if kind == "checkerboard":
        if len(shape) != 3 or shape[1] * shape[2] < 2:
            raise WavesynthError("a checkerboard mask needs an image shape (C, H, W) with H·W >= 2, got "
                                 f"{shape}")
        rows, cols = torch.arange(shape[1]), torch.arange(shape[2])
        mask = ((rows[:, None] + cols[None, :]) % 2 == 0).expand(shape)
    else:
        if shape[0] < 2:
            raise WavesynthError(f"a {kind} mask needs at least 2 entries along dimension 1, got shape "
                                 f"{shape}")
        index = torch.arange(shape[0])
        mask = index < shape[0] // 2 if kind == "half" else index % 2 == 0
        mask = mask.view(-1, *([1] * (len(shape) - 1))).expand(shape)
    return (~mask if flip else mask).contiguous()


class Coupling(Transform):
    """z = m ⊙ x + (1 − m) ⊙ g(x; θ), θ = conditioner(m ⊙ x, context).

    ``conditioner`` maps (batch, *event) [, context] to (batch, num_params · n₁, *rest) where
    event = (n₁, *rest): e.g. ``MLP(D, num_params·D, ...)`` or ``ConvNet(C, num_params·C, ...)``.
    Subclasses define g, g⁻¹ and log s (None for volume-preserving maps).
    """

    num_params: int

    def __init__(self, mask: Tensor, conditioner: nn.Module):
        super().__init__()
        self.register_buffer("mask", mask.bool())
        self.conditioner = conditioner

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, log_scale = self._map(x, self._params(x, context))
        return self._merge(x, y, log_scale)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, log_scale = self._inverse_map(z, self._params(z, context))
        return self._merge(z, y, log_scale)

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, ...]:
        shape = tuple(self.mask.shape)
        check_event_shape(x, shape)
        out = self.conditioner(torch.where(self.mask, x, 0.0), context)
        expected = (x.shape[0], self.num_params * shape[0], *shape[1:])
        if tuple(out.shape) != expected:
            raise ValueError(f"conditioner returned shape {tuple(out.shape)}, expected {expected}")
        return out.reshape(x.shape[0], self.num_params, *shape).unbind(1)

    def _merge(self, x: Tensor, y: Tensor, log_scale: Tensor | None) -> tuple[Tensor, Tensor]:
        out = torch.where(self.mask, x, y)
        if log_scale is None:
            return out, x.new_zeros(x.shape[0])
        return out, sum_except_batch(torch.where(self.mask, 0.0, log_scale))

    def _map(self, x: Tensor, params: tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _inverse_map(self, z: Tensor, params: tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError


class AdditiveCoupling(Coupling):
    """NICE: g = x + t(m ⊙ x); volume preserving, log|det| = 0."""

    num_params = 1

    def _map(self, x, params):
        (shift,) = params
        return x + shift, None

    def _inverse_map(self, z, params):
        (shift,) = params
        return z - shift, None


class AffineCoupling(Coupling):
    """RealNVP/Glow: g = x ⊙ s + t with (h, t) = θ(m ⊙ x) and a bounded log s = ``LOG_SCALES[scale]``(h).

    ``scale="sigmoid"``: s = sigmoid(h + 2) as in Glow; ``scale="tanh"``: log s = tanh(h).
    """

    num_params = 2

    def __init__(self, mask: Tensor, conditioner: nn.Module, scale: str = "sigmoid"):
        if scale not in LOG_SCALES:
            raise WavesynthError(f"unknown scale {scale!r}; choose from {', '.join(LOG_SCALES)}")
        super().__init__(mask, conditioner)
        self.scale = scale

    def _map(self, x, params):
        h, shift = params
        log_scale = LOG_SCALES[self.scale](h)
        return x * torch.exp(log_scale) + shift, log_scale

    def _inverse_map(self, z, params):
        h, shift = params
        log_scale = LOG_SCALES[self.scale](h)
        return (z - shift) * torch.exp(-log_scale), -log_scale


class DiagonalScaling(Transform):
    """z = x ⊙ exp(s) (+ b), one learned s (and b) per event entry; log|det| = Σ s.

    Without shift it is NICE's final scaling layer. With shift it is a learned diagonal Gaussian prior
    N(μ, σ²) with σ = exp(−s), μ = −b·σ, evaluated through a standard-normal base (Glow's learned top).
    With ``context_features`` a zero-initialised linear map of the context c, shape (batch,
    context_features), adds to s (and b) per channel (the event's first axis): s(c) = s + W_s c, the
    class-conditional top prior of Glow.
    """

    def __init__(self, shape: int | Sequence[int], shift: bool = False, context_features: int | None = None):
        super().__init__()
        self.shape = event_shape(shape)
        self.log_scale = nn.Parameter(torch.zeros(self.shape))
        self.shift = nn.Parameter(torch.zeros(self.shape)) if shift else None
        self.context = None
        if context_features is not None:
            self.context = nn.Linear(context_features, (1 + shift) * self.shape[0])
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)

    def _scale_and_shift(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """s and b, shaped like the event (no context) or (batch, *event) (with one)."""
        check_event_shape(x, self.shape)
        features = None if self.context is None else self.context.in_features
        check_context(context, features, x.shape[0], "DiagonalScaling")
        if self.context is None:
            return self.log_scale, self.shift
        offsets = self.context(context).view(x.shape[0], -1, self.shape[0], *([1] * (len(self.shape) - 1)))
        log_scale = self.log_scale + offsets[:, 0]
        return log_scale, None if self.shift is None else self.shift + offsets[:, 1]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._scale_and_shift(x, context)
        z = x * torch.exp(log_scale)
        if shift is not None:
            z = z + shift
        return z, self._logabsdet(log_scale, x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._scale_and_shift(z, context)
        if shift is not None:
            z = z - shift
        return z * torch.exp(-log_scale), -self._logabsdet(log_scale, z)

    def _logabsdet(self, log_scale: Tensor, x: Tensor) -> Tensor:
        return sum_except_batch(log_scale.expand_as(x))
