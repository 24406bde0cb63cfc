"""Learning-rate schedule: linear warmup, then cosine / linear decay to min_lr, or constant."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ScheduleConfig:
    lr: float
    min_lr: float
    warmup_steps: int
    max_steps: int
    kind: str = "cosine"  # cosine | linear | constant


def lr_at(step: int, c: ScheduleConfig) -> float:
    """lr of optimizer step `step` (0-based): (step+1)/warmup * lr during warmup, then decay so
    the last step (max_steps - 1) reaches min_lr. `constant` stays at lr after warmup."""
    if c.warmup_steps > 0 and step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.kind == "constant":
        return c.lr
    span = max(1, c.max_steps - 1 - c.warmup_steps)
    progress = min(1.0, max(0.0, (step - c.warmup_steps) / span))
    if c.kind == "linear":
        return c.lr + (c.min_lr - c.lr) * progress
    return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, c: ScheduleConfig):
    """LambdaLR over lr_at (the optimizer's base lr must be c.lr)."""
    from torch.optim.lr_scheduler import LambdaLR

    base = c.lr if c.lr else 1.0
    return LambdaLR(optimizer, lambda step: lr_at(step, c) / base)
