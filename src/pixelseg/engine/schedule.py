"""Learning-rate schedules as a pure function of the step, so resuming needs no scheduler state."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``total_steps``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "poly":
        return (1 - t) ** 0.9
    if schedule == "step":
        return 0.1 ** int(t * 3)  # /10 at one and two thirds of training
    return 1.0
