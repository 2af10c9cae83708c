"""Tuning and self-configuration.

    space.py        the search space of ``pixelseg tune`` and its YAML format
    options.py      TuneOptions, TuneSummary and one trial's configuration
    study.py        the Optuna study runner: sampling, pruning, shared storage, trial budget
    outputs.py      best.yaml, trials.csv, optimisation history and importance plots
    fingerprint.py  what a dataset and the hardware look like (cheaply)
    cost.py         timed training steps -> seconds per epoch
    plan.py         fingerprint -> a training plan (``pixelseg plan``, ``pixelseg train --data``)

Optuna is an optional dependency: ``import pixelseg`` never imports it; ``require_optuna()``
does, and turns its absence into a PixelsegError that says what to install.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import PixelsegError


def require_optuna() -> ModuleType:
    """Import optuna, or raise a PixelsegError naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise PixelsegError(
            'pixelseg tune needs optuna, which is not installed: pip install "pixelseg[tune]"'
        ) from None
    return optuna


__all__ = ["require_optuna"]
