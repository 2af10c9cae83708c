"""A wall-time budget for a training run: how many epochs fit, re-estimated after every epoch.

``train.time_budget_minutes`` makes the number of epochs follow the time that is really there:
set-up (data checks, loaders), every epoch as it actually ran (loader and augmentation,
forward/backward, validation, checkpoint writes) and the evaluation that ends a run
(``finish_run``: the best checkpoint scored on val and on up to 1000 training images for the
overfitting gap). ``train.epochs`` is the first guess; after each epoch the count is set so
that the measured epochs, plus the estimated end, fill the budget. The lr schedule is a
function of the planned total, so cosine or poly decay ends with the budget, not at a step
count fixed in advance.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

MAX_EPOCHS = 1000


@dataclass
class TimeBudget:
    seconds: float
    started: float = field(default_factory=time.time)  # when the run's process started
    spent_before: float = 0.0  # wall time of the epochs a resumed run already did
    epoch_seconds: list[float] = field(default_factory=list)

    def record(self, seconds: float) -> None:
        self.epoch_seconds.append(seconds)

    def elapsed(self) -> float:
        return time.time() - self.started + self.spent_before

    def epochs_that_fit(self, done: int, end_seconds: float) -> int:
        """Total epochs (``done`` of them finished) that fit before the budget runs out, with
        ``end_seconds`` kept for the final evaluation. Recent epochs weigh most: the first one
        also pays for warm-up (allocations, caches)."""
        recent = self.epoch_seconds[-3:] or [1.0]
        per_epoch = sum(recent) / len(recent)
        left = self.seconds - self.elapsed() - end_seconds
        # Whole epochs that fit: an epoch that would end past the budget is not started (on
        # CamVid, rounding to the nearest instead ended a 10-minute run at 11.0 minutes).
        return max(done, min(MAX_EPOCHS, done + math.floor(left / per_epoch)))


def end_of_run_seconds(val_seconds: float, n_val: int, n_train: int) -> float:
    """``finish_run``'s evaluation, from this epoch's validation: the best checkpoint on val
    again and on up to 1000 training images (the overfitting gap), each about twice a plain
    validation (calibration, boundary F1), plus ~10 s for the report and the model summary
    (measured on CamVid: 4 s validations, about 40 s for the end of the run)."""
    per_image = val_seconds / max(1, n_val)
    return per_image * 2.0 * (n_val + min(n_train, 1000)) + 10.0
