"""Learning-rate schedule: linear warmup then linear decay towards zero."""

from __future__ import annotations

import math

import torch


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of warmup steps: ``ceil(warmup_ratio * total_steps)``, within ``[0, total]``."""
    return max(0, min(total_steps, math.ceil(warmup_ratio * total_steps - 1e-9)))


def linear_factor(step: int, total_steps: int, warmup: int) -> float:
    """LR multiplier used by optimizer step ``step`` (0-based).

    Warmup: ``(step + 1) / warmup`` (so the first step already learns); then linear decay
    from 1 at ``step = warmup`` to ``1 / (total - warmup)`` at the last step.
    """
    if step < warmup:
        return (step + 1) / warmup
    remaining = total_steps - warmup
    return max(0.0, (total_steps - step) / remaining) if remaining > 0 else 1.0


def linear_warmup_decay(optimizer: torch.optim.Optimizer, total_steps: int,
                        warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`linear_factor`; call ``.step()`` after each update."""
    warm = warmup_steps(total_steps, warmup_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_factor(s, total_steps, warm))
