"""Optional step-time breakdown of the training loop (bench/train_speed.py uses it).

The trainer calls ``timer.lap(phase)`` at phase boundaries only when a timer is attached
(``Trainer.timer``, None by default), so an untimed run pays one ``is None`` test per phase.
On CUDA each lap synchronises the device, which is the only way to attribute GPU time to a
phase; that perturbs the pipeline, so timed runs are for diagnosis, not for throughput.
"""

from __future__ import annotations

import time

import torch

PHASES = ("data", "augment", "forward", "backward", "optimizer", "other")


class StepTimer:
    """Accumulates seconds per phase over the steps after the first ``skip`` (warm-up).

    ``data``: waiting for the loader and copying to the device; ``augment``: on-device
    augmentation and normalisation; ``forward`` includes the loss; ``optimizer``: clipping, the
    step, zeroing and the EMA update; ``other``: metrics, NaN checks, logging.
    """

    def __init__(
        self, device: torch.device | None = None, skip: int = 1, sync: bool = True
    ) -> None:
        # sync=False on CUDA measures throughput instead: the loop's own once-per-step host
        # sync (the NaN check) keeps the host at most one step ahead of the device.
        self.sync = sync and device is not None and device.type == "cuda"
        self.skip = skip
        self.steps = 0  # micro-batches seen, warm-up included
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.images = 0
        self._last = time.perf_counter()

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        """Call right before asking the loader for the first batch."""
        self._last = self._now()

    def lap(self, phase: str) -> None:
        now = self._now()
        if self.steps >= self.skip:
            self.totals[phase] += now - self._last
        self._last = now

    def end_step(self, images: int) -> None:
        """Close a micro-batch: the time until the next lap counts as ``data``."""
        self.lap("other")
        if self.steps >= self.skip:
            self.images += images
        self.steps += 1

    @property
    def timed_steps(self) -> int:
        return max(0, self.steps - self.skip)

    def summary(self) -> dict:
        """Seconds per phase per step, shares of the step, images/s."""
        total = sum(self.totals.values())
        n = max(1, self.timed_steps)
        return {
            "timed_steps": self.timed_steps,
            "step_s": total / n,
            "phase_s": {k: v / n for k, v in self.totals.items()},
            "phase_share": {k: (v / total if total else 0.0) for k, v in self.totals.items()},
            "images_per_s": self.images / total if total else 0.0,
        }
