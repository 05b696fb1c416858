"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` whose parameters track an exponential moving average of its own.

    After each optimiser step, ``update`` does ``ema ← d·ema + (1 − d)·param`` with the warmed-up decay
    ``d = min(decay, (1 + n) / (10 + n))`` (n = number of earlier updates), so early averages are not
    dominated by the random initialisation. Buffers (e.g. normalisation statistics) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        """The decay used for update number ``updates`` (counted from 0)."""
        return min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay_at(self.updates)
        for ema, param in zip(self.module.parameters(), model.parameters(), strict=True):
            ema.lerp_(param.detach(), 1.0 - d)
        for ema, buffer in zip(self.module.buffers(), model.buffers(), strict=True):
            ema.copy_(buffer)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
