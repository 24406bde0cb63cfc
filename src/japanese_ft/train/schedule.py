"""Learning-rate schedule: linear warmup, then cosine / linear decay to min_lr, or constant.

The schedule's settings are `config.ScheduleConfig`, which `train` (TrainingConfig) extends, so
`lr_at(step, cfg.train)` reads the run config itself.
"""

from __future__ import annotations

import math

from japanese_ft.config import ScheduleConfig


def lr_at(step: int, c: ScheduleConfig) -> float:
    """lr of optimizer step `step` (0-based): (step+1)/warmup * lr during warmup, then decay so
    the last step (max_steps - 1) reaches min_lr. `constant` stays at lr after warmup."""
    if c.warmup_steps > 0 and step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.schedule == "constant":
        return c.lr
    span = max(1, c.max_steps - 1 - c.warmup_steps)
    progress = min(1.0, max(0.0, (step - c.warmup_steps) / span))
    if c.schedule == "linear":
        return c.lr + (c.min_lr - c.lr) * progress
    return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, c: ScheduleConfig):
    """LambdaLR over lr_at (the optimizer's base lr must be c.lr)."""
    from torch.optim.lr_scheduler import LambdaLR

    base = c.lr if c.lr else 1.0
    return LambdaLR(optimizer, lambda step: lr_at(step, c) / base)
