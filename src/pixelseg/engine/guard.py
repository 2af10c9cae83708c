"""NaN/inf protection: stop at once with a clear error, or roll back and halve the lr.

The trainer checks, before every optimizer step, that the step's losses and the global
gradient norm are finite (the gradient norm is the same on every rank after DDP's all-reduce,
and a NaN on any rank poisons it, so all ranks agree without an extra collective for the
common case). A bad step is never applied, and a checkpoint is only written from finite
weights, so no checkpoint is ever poisoned.

With ``train.nan_rollback=true`` the state at the start of the epoch (= the last checkpoint)
is kept in memory (on the CPU); a bad step restores it, halves the learning rate for the rest of
the run and re-runs the epoch, at most ``train.nan_max_retries`` times.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import PixelsegError
from .optim import load_optimizer


class NonFiniteLoss(Exception):
    """Raised inside the epoch loop; the trainer turns it into a rollback or a PixelsegError."""

    def __init__(self, where: str, grad_norm: float) -> None:
        super().__init__(
            f"{where}: the loss or its gradients became NaN/inf (gradient norm {grad_norm})"
        )
        self.where = where


def _cpu_copy(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class NanGuard:
    """Snapshots and rollbacks; ``lr_scale`` multiplies the scheduled learning rate."""

    def __init__(self, rollback: bool, max_retries: int, lr: float, lr_scale: float = 1.0) -> None:
        self.rollback, self.max_retries, self.lr = rollback, max_retries, lr
        self.lr_scale = lr_scale
        self.retries = 0
        self._snapshot: dict[str, Any] | None = None

    def snapshot(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema=None) -> None:
        """Remember the current (good) state; a no-op unless rollback is enabled."""
        if not self.rollback:
            return
        self._snapshot = {
            "model": _cpu_copy(model.state_dict()),
            "optimizer": _cpu_copy(optimizer.state_dict()),
            "ema": None if ema is None else (_cpu_copy(ema.state_dict()), ema.updates),
        }

    def handle(
        self,
        err: NonFiniteLoss,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema=None,
        log=print,
    ) -> None:
        """Roll back (and return) or raise the user-facing error."""
        lr_now = self.lr * self.lr_scale
        if not self.rollback or self._snapshot is None:
            raise PixelsegError(
                f"{err}; lower train.lr (now {lr_now:g}), set train.clip_grad_norm, or check "
                f"the data; or set train.nan_rollback=true to roll back and halve the lr "
                f"automatically. No checkpoint was written for this epoch."
            ) from None
        if self.retries >= self.max_retries:
            raise PixelsegError(
                f"{err} again after {self.retries} rollbacks (train.nan_max_retries="
                f"{self.max_retries}); the lr is now {lr_now:g}. Lower train.lr or check the data. "
                f"The last checkpoint is from before the first bad step."
            ) from None
        self.retries += 1
        self.lr_scale *= 0.5
        snap = self._snapshot
        model.load_state_dict(snap["model"])
        load_optimizer(optimizer, snap["optimizer"])
        if ema is not None and snap["ema"] is not None:
            ema.load_state_dict(*snap["ema"])
        optimizer.zero_grad(set_to_none=True)
        log(
            f"{err}: rolled back to the start of the epoch with the lr halved "
            f"(scale {self.lr_scale:g}, retry {self.retries}/{self.max_retries})"
        )
