"""The Optuna pieces a study is made of: its storage (SQLite by default, with a heartbeat),
the pruner and the sampler, the per-epoch pruning rule a trial's training follows
(``EpochReporter``), and which trials count toward the ``--trials`` budget. The study that runs
the trials is ``workflows/tune.py``."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any

from ..errors import PixelsegError
from . import require_optuna
from .options import TuneOptions

PRUNERS = ("median", "halving", "none")


class NoLock(contextlib.nullcontext):
    """Stands in for the file lock where the storage is a database server (no shared folder)."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


def storage_url(opts: TuneOptions) -> str:
    if opts.storage:
        return opts.storage
    return f"sqlite:///{(opts.study_dir / 'study.db').resolve()}"


def make_storage(url: str):
    """An RDBStorage with a heartbeat (so a killed worker's trial is failed, not left running)
    and, for SQLite, a long busy timeout: concurrent writers wait instead of failing with
    'database is locked'."""
    optuna = require_optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():  # the heartbeat is flagged experimental
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=30, grace_period=120, **kwargs
            )
    except Exception as e:  # a bad URL, a missing driver, an unreachable server
        raise PixelsegError(f"--storage {url}: cannot open the study database ({e})") from None


def pruning_warmup(epochs_per_trial: int) -> int:
    """Epochs a trial always runs before it can be pruned: a third of its budget, at least one.

    After the first epoch nearly every model from scratch still predicts mostly background
    (on the built-in scenes every such trial scores the same ~0.11 mIoU), so a comparison
    there prunes at random.
    """
    return max(1, epochs_per_trial // 3)


def make_pruner(name: str, epochs_per_trial: int = 3):
    optuna = require_optuna()
    warmup = pruning_warmup(epochs_per_trial)
    if name == "median":
        # Steps are epochs (1-based) and the pruner skips only steps < n_warmup_steps: so
        # warmup + 1 makes epoch warmup + 1 the first that can be pruned.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup + 1)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup + 1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise PixelsegError(f"--pruner {name}: choose from {', '.join(PRUNERS)}")


def make_sampler(seed: int, trials: int):
    optuna = require_optuna()
    with warnings.catch_warnings():  # constant_liar is experimental
        warnings.simplefilter("ignore")
        # constant_liar: running trials count as bad, so parallel workers explore apart.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(3, min(10, trials // 3)), constant_liar=True
        )


def counts_toward_budget(trial) -> bool:
    """Finished or running trials count; interrupted, stale and skipped ones do not."""
    state = trial.state.name
    if state in ("COMPLETE", "PRUNED", "RUNNING", "WAITING"):
        return True
    return state == "FAIL" and "error" in trial.user_attrs


def over_budget(study, trial, trials: int) -> bool:
    """``trial`` would exceed the study's ``trials``: as many trials numbered before it already
    count. With a database server, two workers may both have seen room for one more trial."""
    used = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and counts_toward_budget(t)
    ]
    return len(used) >= trials


class TrialTimeUp(Exception):
    """Raised from the epoch callback when a trial has used its minutes."""


class EpochReporter:
    """The trainer's ``on_epoch`` for one trial: report val mIoU, prune, enforce the trial's
    minutes. ``best`` is the best val mIoU reported, the trial's value when its time is up."""

    def __init__(self, trial, epochs: int, minutes: float | None) -> None:
        self.trial, self.epochs, self.minutes = trial, epochs, minutes
        self.t0 = time.time()
        self.best = -math.inf

    def __call__(self, row: dict) -> None:
        optuna = require_optuna()
        epoch, value = int(row["epoch"]), float(row["val_miou"])
        self.best = max(self.best, value)
        self.trial.report(value, epoch)  # also how trials.csv counts a trial's epochs
        if epoch >= self.epochs:
            return  # pruning after the last epoch would only throw the result away
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: val mIoU {value:.4f}")
        if self.minutes is not None and time.time() - self.t0 > 60 * self.minutes:
            raise TrialTimeUp(f"stopped after epoch {epoch}: {self.minutes:g} min per trial used")
