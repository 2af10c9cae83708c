"""Tuning and self-configuration.

    space.py         the search space of ``pixelseg tune`` and its YAML format
    distributions.py one searched parameter's distribution; the knobs models declare
    options.py       TuneOptions, the space they ask for and one trial's configuration
    optuna_setup.py  a study's storage, pruner and sampler, the per-epoch pruning rule, and
                     its trial budget
    fingerprint.py   what a dataset and the hardware look like (cheaply)
    cost.py          timed training steps -> seconds per epoch (``MeasuredCosts``)
    constraints.py   what the user fixed, for the planner to work around
    ladder.py        the ladder search: model and resolution that fit the time budget
    plan_rules.py    the planning rules: batch, epochs, class weights, augmentation, ...
    plan.py          fingerprint -> a training plan (``pixelseg plan``, ``pixelseg train``)

This layer decides; the commands that act on its decisions are ``workflows/``: ``pixelseg
tune`` (the study that runs the trials and writes its outputs) is ``workflows/tune.py``,
``pixelseg plan`` is ``workflows/plan.py``.

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
