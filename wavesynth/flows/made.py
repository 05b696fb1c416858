"""MADE: a masked MLP whose outputs are autoregressive in its inputs (Germain et al., 2015).

Each input d gets a degree m(d) ∈ {1..D} from an ordering, each hidden unit k a degree m(k) ∈ {1..D-1}
(∈ {0..D-1} with a context, degree 0 meaning "context only").
A hidden weight k←j is kept iff m(k) ≥ m(j) and an output weight i←k iff m(i) > m(k), so output i is a
function of the inputs {j : m(j) < m(i)} only (and of the context, which every hidden layer sees unmasked).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WavesynthError

ORDERINGS = ("natural", "reversed", "random")


class MaskedLinear(nn.Linear):
    """y = x (W ⊙ M)ᵀ + b with a fixed binary mask M (out_features, in_features)."""

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def input_degrees(features: int, ordering: str | Tensor = "natural") -> Tensor:
    """Degrees m(d) ∈ {1..D}: ``natural`` 1..D, ``reversed`` D..1, ``random``, or an explicit ordering
    (a permutation of 0..D-1 giving each input's position)."""
    if isinstance(ordering, str):
        if ordering == "natural":
            return torch.arange(1, features + 1)
        if ordering == "reversed":
            return torch.arange(features, 0, -1)
        if ordering == "random":
            return torch.randperm(features) + 1
        raise WavesynthError(
            f"unknown ordering {ordering!r}; choose from {', '.join(ORDERINGS)} or a permutation"
        )
    order = torch.as_tensor(ordering, dtype=torch.long)
    if order.shape != (features,) or not torch.equal(order.sort().values, torch.arange(features)):
        raise WavesynthError(f"ordering must be a permutation of 0..{features - 1}, got {order.tolist()}")
    return order + 1


def hidden_degrees(features: int, hidden_features: int, with_context: bool = False) -> Tensor:
    """Degrees cycling through 1..D-1, or 0..D-1 with a context: units of degree 0 see only the context,
    which so reaches the first output too."""
    low = 0 if with_context or features == 1 else 1
    return torch.arange(hidden_features) % (features - low) + low


class MADE(nn.Module):
    """Autoregressive network: (batch, D) [, context (batch, C)] -> (batch, K, D) parameters.

    ``out[:, k, i]`` depends only on the inputs before i in ``ordering`` (and on the context).
    ``num_blocks`` hidden layers of width ``hidden_features``; with ``residual=True`` they are residual
    blocks h + W₂ act(W₁ act(h)) instead, started at the identity. The output layer starts at zero
    unless ``zero_init_output=False``. ``activation`` may work in place (the default ``torch.relu_``
    does): it only ever receives fresh intermediate tensors.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int,
        num_blocks: int = 2,
        output_multiplier: int = 1,
        context_features: int | None = None,
        ordering: str | Tensor = "natural",
        residual: bool = False,
        activation: Callable[[Tensor], Tensor] = torch.relu_,
        zero_init_output: bool = True,
    ):
        super().__init__()
        sizes = [features, hidden_features, num_blocks, output_multiplier]
        if min(sizes) < 1 or (context_features is not None and context_features < 1):
            raise WavesynthError(
                "features, hidden_features, num_blocks, output_multiplier, context_features must be >= 1"
            )
        self.features = features
        self.output_multiplier = output_multiplier
        self.context_features = context_features
        self.residual = residual
        self.activation = activation

        degrees_in = input_degrees(features, ordering)
        degrees_hidden = hidden_degrees(features, hidden_features, context_features is not None)
        self.register_buffer("degrees", degrees_in)
        input_mask = degrees_hidden[:, None] >= degrees_in[None, :]
        hidden_mask = degrees_hidden[:, None] >= degrees_hidden[None, :]
        output_mask = (degrees_in[:, None] > degrees_hidden[None, :]).repeat(output_multiplier, 1)

        self.input_layer = MaskedLinear(input_mask)
        num_hidden = 2 * num_blocks if residual else num_blocks - 1
        self.hidden_layers = nn.ModuleList(MaskedLinear(hidden_mask) for _ in range(num_hidden))
        self.num_context_terms = num_blocks + 1 if residual else num_blocks
        self.context_layer = None
        if context_features is not None:
            self.context_layer = nn.Linear(context_features, hidden_features * self.num_context_terms)
        self.output_layer = MaskedLinear(output_mask)
        with torch.no_grad():
            if residual:
                for layer in self.hidden_layers[1::2]:
                    layer.weight.zero_()
                    layer.bias.zero_()
            if zero_init_output:
                self.output_layer.weight.zero_()
                self.output_layer.bias.zero_()

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self.check_input(x, context)
        context_terms = None
        if self.context_layer is not None:
            context_terms = self.context_layer(context).chunk(self.num_context_terms, dim=1)
        h = self.input_layer(x)
        if context_terms is not None:
            h = h + context_terms[0]
        if self.residual:
            for i in range(0, len(self.hidden_layers), 2):
                t = self.hidden_layers[i](self.activation(h.clone()))
                if context_terms is not None:
                    t = t + context_terms[i // 2 + 1]
                h = h + self.hidden_layers[i + 1](self.activation(t))
        else:
            for i, layer in enumerate(self.hidden_layers):
                h = layer(self.activation(h))
                if context_terms is not None:
                    h = h + context_terms[i + 1]
        out = self.output_layer(self.activation(h))
        return out.view(x.shape[0], self.output_multiplier, self.features)

    def check_input(self, x: Tensor, context: Tensor | None) -> None:
        """Raise ValueError unless x is (batch, D) and context is (batch, C) exactly when C is set."""
        if x.dim() != 2 or x.shape[1] != self.features:
            raise WavesynthError(f"input has shape {tuple(x.shape)}, expected (batch, {self.features})")
        if self.context_features is None:
            if context is not None:
                raise WavesynthError("context given, but this model was built without context_features")
        elif context is None:
            raise WavesynthError(f"context of shape (batch, {self.context_features}) is required")
        elif tuple(context.shape) != (x.shape[0], self.context_features):
            raise WavesynthError(
                f"context has shape {tuple(context.shape)}, expected ({x.shape[0]}, {self.context_features})"
            )
