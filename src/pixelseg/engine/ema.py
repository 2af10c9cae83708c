"""Exponential moving average of a model's weights (``train.ema_decay``).

The average of the last ~1/(1-decay) optimizer steps is usually a better model than the last
step's weights: it smooths the noise of small batches. When enabled, validation, the best
checkpoint and early stopping all use the averaged weights; ``last`` keeps the raw weights
(training continues from them) and ``ema`` keeps the average, so resuming restores both.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .sidecar import Sidecar


class ModelEma:
    """A frozen copy of ``model`` whose parameters track ``decay * ema + (1 - decay) * model``.

    The effective decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first steps, so
    a short run is not dominated by the random initial weights. Buffers (BatchNorm statistics)
    are copied, not averaged: they are already running averages.

    >>> ema = ModelEma(nn.Linear(2, 2), decay=0.999)
    >>> ema.update(nn.Linear(2, 2))  # after each optimizer step
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        ema_p = [p for p in self.module.parameters() if p.is_floating_point()]
        new_p = [p.detach() for p in model.parameters() if p.is_floating_point()]
        # ema += (1 - d) * (new - ema), one fused kernel per device/dtype group.
        torch._foreach_lerp_(ema_p, new_p, 1.0 - d)
        for eb, mb in zip(self.module.buffers(), model.buffers()):
            eb.copy_(mb)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates

    def resume(self, sidecar: Path | Sidecar, log=print) -> None:
        """Restore the average saved beside a ``last`` checkpoint (``ema.json``, or the
        sidecar ``last.json`` records for it)."""
        if isinstance(sidecar, Path) and not sidecar.is_file():  # started without EMA
            log(f"{sidecar}: not found; the weight average starts from the resumed weights")
            return
        model, meta = load_checkpoint(sidecar)
        self.load_state_dict(model.state_dict(), meta.ema_updates or 0)
