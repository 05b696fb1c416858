"""Conditioner networks θ(x_id, c) for coupling layers and learned priors.

Both nets start with a zero output layer, so a coupling built on them starts near the identity and a
learned prior at N(0, I). An optional context c of shape (batch, context_features) is appended to the
input: as extra features for vectors, as extra channels (constant over positions) for images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WavesynthError


def check_context(context: Tensor | None, context_features: int | None, batch: int, owner: str) -> None:
    """Raise ValueError unless ``context`` is None for a module built without ``context_features``, or has
    shape (batch, context_features) for one built with them."""
    if context_features is None:
        if context is not None:
            raise WavesynthError(f"this {owner} was built without context_features but got a context")
        return
    if context is None or context.dim() != 2 or context.shape[1] != context_features:
        shape = None if context is None else tuple(context.shape)
        raise WavesynthError(f"context must have shape (batch, {context_features}), got {shape}")
    if context.shape[0] != batch:
        raise WavesynthError(f"context has batch size {context.shape[0]}, expected {batch}")


def _append_context(x: Tensor, context: Tensor | None, context_features: int | None) -> Tensor:
    check_context(context, context_features, x.shape[0], "conditioner")
    if context is None:
        return x
    context = context.view(*context.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.cat([x, context], dim=1)


def _check_sizes(**sizes: int | None) -> None:
    for name, size in sizes.items():
        if size is not None and size < 1:
            raise WavesynthError(f"{name} must be positive, got {size}")


class MLP(nn.Module):
    """(batch, in_features) [, context] -> (batch, out_features): ``num_blocks`` ReLU hidden layers."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int,
        num_blocks: int = 2,
        context_features: int | None = None,
    ):
        super().__init__()
        _check_sizes(
            in_features=in_features,
            out_features=out_features,
            hidden_features=hidden_features,
            num_blocks=num_blocks,
            context_features=context_features,
        )
        self.context_features = context_features
        sizes = [in_features + (context_features or 0)] + [hidden_features] * num_blocks
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.output = nn.Linear(hidden_features, out_features)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = _append_context(x, context, self.context_features)
        for layer in self.hidden:
            h = F.relu(layer(h))
        return self.output(h)


class ResidualBlock(nn.Module):
    """h + conv3x3(ReLU(conv3x3(ReLU(h)))), the second conv started at zero (so the block at identity)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class ConvNet(nn.Module):
    """(batch, in_channels, H, W) [, context] -> (batch, out_channels, H, W).

    conv3x3 → ReLU → ``num_blocks`` residual blocks → conv1x1 → ReLU → zero-initialised conv3x3.
    ``num_blocks=0`` is Glow's coupling network, ``num_blocks>0`` a small ResNet as in RealNVP, and
    ``hidden_channels=None`` only the zero-initialised conv3x3 (Glow's split prior).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int | None = None,
        num_blocks: int = 0,
        context_features: int | None = None,
    ):
        super().__init__()
        _check_sizes(
            in_channels=in_channels,
            out_channels=out_channels,
            hidden_channels=hidden_channels,
            context_features=context_features,
        )
        if num_blocks < 0 or (hidden_channels is None and num_blocks > 0):
            raise WavesynthError(f"num_blocks must be >= 0 (and 0 without hidden_channels), got {num_blocks}")
        self.context_features = context_features
        in_channels += context_features or 0
        if hidden_channels is None:
            self.body = nn.Identity()
        else:
            self.body = nn.Sequential(
                nn.Conv2d(in_channels, hidden_channels, 3, padding=1),
                nn.ReLU(),
                *(ResidualBlock(hidden_channels) for _ in range(num_blocks)),
                nn.Conv2d(hidden_channels, hidden_channels, 1),
                nn.ReLU(),
            )
            in_channels = hidden_channels
        self.output = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if x.dim() != 4:
            raise WavesynthError(f"expected images (batch, C, H, W), got shape {tuple(x.shape)}")
        return self.output(self.body(_append_context(x, context, self.context_features)))
