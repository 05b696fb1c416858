"""Optimiser (Adam or AdamW) and learning-rate schedule (linear warm-up, then constant/linear/cosine)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters; weight decay only on tensors with 2+ dimensions."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=config.lr, betas=config.betas, eps=config.eps)


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """The multiplier of ``config.lr`` for the update made at step ``s`` (0-based)."""
    floor = config.min_lr / config.lr
    decay_steps = max(config.steps - config.warmup_steps, 1)

    def factor(s: int) -> float:
        if s < config.warmup_steps:
            return (s + 1) / (config.warmup_steps + 1)
        progress = min((s - config.warmup_steps) / decay_steps, 1.0)
        if config.schedule == "linear":
            return 1.0 - (1.0 - floor) * progress
        if config.schedule == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LambdaLR:
    """Sets the learning rate of each step to ``config.lr * lr_factor(config)(step)``."""
    return LambdaLR(optimizer, lr_factor(config))


def resume_optimizer(optimizer: torch.optim.Optimizer, scheduler: LambdaLR, optimizer_state: dict[str, Any],
                     scheduler_state: dict[str, Any], config: TrainConfig) -> float:
    """Load a checkpoint's optimiser and schedule states into ``optimizer`` and ``scheduler`` (both just
    built from ``config``), keeping ``config``'s settings; returns the lr the checkpoint would have used.

    The moments and counters come from the checkpoint; the hyper-parameters (Adam or AdamW, betas, eps,
    weight decay) and the schedule from ``config``: the next update's lr is ``config.lr *
    lr_factor(config)(step)``, so a changed ``lr``, ``min_lr``, ``warmup_steps``, ``schedule`` or ``steps``
    applies from the resumed step on. With the checkpoint's own config this equals a plain load, bit for bit.
    """
    fresh = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    saved = scheduler.get_last_lr()[0]
    lr = config.lr * lr_factor(config)(scheduler.last_epoch)  # as LambdaLR computes it
    for group, settings in zip(optimizer.param_groups, fresh, strict=True):
        group.update(settings, lr=lr)  # with initial_lr = config.lr
    scheduler.base_lrs = [config.lr] * len(fresh)
    scheduler._last_lr = [lr] * len(fresh)  # what get_last_lr() reports; LambdaLR has no setter for it
    return saved
