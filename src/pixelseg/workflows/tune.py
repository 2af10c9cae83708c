"""``pixelseg tune`` as one call: the Optuna study that samples a configuration, trains it as a
normal run, reports the val mIoU after every epoch so that bad trials are pruned, keeps the
best and writes the study's outputs (``tune_outputs.py``). What it decides with (the search
space, the sampler, the pruning rules, one trial's configuration) is ``tuning/``.

    opts = TuneOptions(data="data/", trials=20, epochs_per_trial=3)
    summary = run_study(opts)          # -> <out>/<study>/{study.db, trials/, best.yaml, ...}

Storage and workers. The study lives in a database, by default ``<out>/<study>/study.db``
(SQLite), and is loaded if it exists: an interrupted study resumes, and several workers
(``pixelseg tune`` started more than once, with the same --out and --study, or the same
--storage URL on several machines) share it. ``--trials N`` is the size of the whole study,
not of one worker: a worker starts a trial only while fewer than N trials are finished (as
completed, pruned or failed by an error) or running. Trials cut short by an interrupt or a
killed worker do not count and are run again with a new configuration. With SQLite, the
check and the creation of the trial happen under a file lock, so the count is exact; with a
database server a race between two workers can create a trial too many, which is then
recorded as failed with ``skipped`` set and not run.

Every trial is a normal run folder, ``<out>/<study>/trials/trial-<number>``. Its sampler is
TPE seeded with ``seed + trial number``, so a study is reproducible trial by trial whatever
the number of workers (up to the order in which parallel trials finish).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..config import RunConfig, load_config
from ..data.pipeline import open_train_val, val_is_trained_on
from ..engine import trainer  # trainer.train looked up per trial: tests replace it
from ..engine.device import configure_threads, pick_device
from ..errors import PixelsegError
from ..models import get_entry
from ..tuning import require_optuna
from ..tuning.cost import measure_model_cost
from ..tuning.fingerprint import image_size, spread
from ..tuning.options import TuneOptions, trial_config
from ..tuning.optuna_setup import (
    PRUNERS,
    EpochReporter,
    NoLock,
    TrialTimeUp,
    counts_toward_budget,
    make_pruner,
    make_sampler,
    make_storage,
    over_budget,
    storage_url,
)
from ..tuning.space import SearchSpace
from .tune_outputs import TuneSummary, write_outputs

MAX_CONSECUTIVE_FAILURES = 5


def check_options(opts: TuneOptions) -> tuple[RunConfig, SearchSpace]:
    """Everything that can be wrong with the user's input, before any trial runs; returns the
    base configuration and the space searched around it, both checked."""
    if opts.trials < 1:
        raise PixelsegError(f"--trials: must be >= 1, got {opts.trials}")
    if opts.epochs_per_trial < 1:
        raise PixelsegError(f"--epochs-per-trial: must be >= 1, got {opts.epochs_per_trial}")
    if opts.minutes_per_trial is not None and opts.minutes_per_trial <= 0:
        raise PixelsegError(f"--minutes-per-trial: must be > 0, got {opts.minutes_per_trial}")
    if opts.pruner not in PRUNERS:
        raise PixelsegError(f"--pruner {opts.pruner}: choose from {', '.join(PRUNERS)}")
    base = load_config(opts.config, opts.base_overrides())
    open_train_val(base.data)  # names a missing dataset or split now, not in every trial
    if val_is_trained_on(base.data):
        raise PixelsegError(
            f"data.train_split={base.data.train_split}: a study selects on val, so val cannot "
            "be trained on; tune on train, then train the best configuration on train+val"
        )
    space = opts.search_space(base)
    knobs = {k for name in space.models for k in get_entry(name).knobs()}
    for knob in base.model.knobs:
        if knob not in knobs:
            raise PixelsegError(
                f"model.{knob}: none of the candidate models "
                f"({', '.join(space.models)}) has this knob"
            )
    return base, space


def open_study(opts: TuneOptions, lock: FileLock | NoLock):
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own one line per trial instead
    opts.study_dir.mkdir(parents=True, exist_ok=True)
    with lock:  # two workers creating the same SQLite schema at once would collide
        storage = make_storage(storage_url(opts))
        study = optuna.create_study(
            study_name=opts.study,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            sampler=make_sampler(opts.seed, opts.trials),
            pruner=make_pruner(opts.pruner, opts.epochs_per_trial),
        )
    if study.direction.name != "MAXIMIZE":
        raise PixelsegError(
            f"--study {opts.study}: an existing study that minimises; choose another name"
        )
    trials_dir = opts.study_dir / "trials"
    if not study.trials and trials_dir.is_dir() and any(trials_dir.iterdir()):
        raise PixelsegError(
            f"{trials_dir}: holds trial folders of another study (the "
            f"database is new); use another --study or --out"
        )
    return study


def _objective(
    opts: TuneOptions, space: SearchSpace, lock: FileLock | NoLock, log: Callable
) -> Callable:
    optuna = require_optuna()

    def objective(trial) -> float:
        lock.release()  # the trial exists now: other workers may count it and start theirs
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            sampled = space.sample(trial)
            trial.set_user_attr("overrides", sampled.format())  # JSON in the study database
            cfg = trial_config(opts, sampled, trial.number)
            trial.set_user_attr("run_dir", str(Path(cfg.out_dir) / cfg.name))
            reporter = EpochReporter(trial, opts.epochs_per_trial, opts.minutes_per_trial)
            trial_log = (
                (lambda *a, **k: log(f"  [trial {trial.number}]", *a))
                if opts.verbose
                else (lambda *a, **k: None)
            )
            try:
                result = trainer.train(cfg, progress=False, log=trial_log, on_epoch=reporter)
                return float(result.best_miou)
            except TrialTimeUp as e:
                trial.set_user_attr("stopped", str(e))
                return float(reporter.best)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            trial.set_user_attr("error", f"{type(e).__name__}: {first}")
            raise

    return objective


def run_study(opts: TuneOptions, log: Callable[..., None] = print) -> TuneSummary:
    """Run trials until the study has ``opts.trials`` (see the module docstring); write the
    outputs (tune_outputs.py) when this worker stops, also on Ctrl-C."""
    require_optuna()  # before any work: a missing optuna is the first thing to say
    base, space = check_options(opts)
    sqlite = storage_url(opts).startswith("sqlite")
    # The lock is re-entrant in filelock; here it is only ever taken once, and release() of a
    # lock not held is a no-op, as the loop below relies on.
    lock = FileLock(opts.study_dir / ".tune.lock") if sqlite else NoLock()
    study = open_study(opts, lock)
    log(
        f"study {opts.study!r} in {opts.study_dir} (storage {storage_url(opts)}); "
        f"{len(study.trials)} trial(s) already in it"
    )
    log("search space:\n" + space.describe())
    # Trial 0 of a new study is the configuration the user starts from: the study can only
    # improve on it, and TPE starts from one sound point instead of random ones alone.
    base_params = space.params_of(base) if opts.enqueue_base else None
    estimate_cost(opts, base, study, log)
    objective = _objective(opts, space, lock, log)
    t_start, failures, finished = time.time(), 0, []

    def on_trial_end(study, frozen) -> None:
        finished.append(frozen)

    try:
        while True:
            if opts.timeout is not None and time.time() - t_start >= opts.timeout:
                log(f"--timeout {opts.timeout:g}s reached: no new trial")
                break
            lock.acquire()
            try:
                trials = study.get_trials(deepcopy=False)
                if sum(counts_toward_budget(t) for t in trials) >= opts.trials:
                    break
                if base_params and not trials:  # under the lock: added once, run at once
                    study.enqueue_trial(base_params, skip_if_exists=True)
                    log(f"the first trial is your base configuration ({base.model.name})")
                # TPE seeded per trial number (the next one, exact under the lock).
                study.sampler = make_sampler(opts.seed + len(trials), opts.trials)
                study.optimize(
                    _guarded(objective, opts, study),
                    n_trials=1,
                    catch=(Exception,),
                    callbacks=[on_trial_end],
                )
            finally:
                lock.release()
            frozen = finished[-1]
            log(trial_line(frozen))
            if len(finished) == 1 and frozen.duration is not None:
                remaining = opts.trials - sum(counts_toward_budget(t) for t in study.trials)
                log(
                    f"  first trial took {frozen.duration.total_seconds():.0f} s: about "
                    f"{remaining * frozen.duration.total_seconds() / 60:.1f} min for the "
                    f"{remaining} still to start (less with pruning)"
                )
            failures = failures + 1 if "error" in frozen.user_attrs else 0
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise PixelsegError(
                    f"{failures} trials in a row failed; the last: {frozen.user_attrs['error']}"
                )
    except BaseException:
        lock.release()
        with contextlib.suppress(Exception):  # keep what the finished trials found
            write_outputs(study, opts, log)
        raise
    return write_outputs(study, opts, log)


def _guarded(objective: Callable, opts: TuneOptions, study) -> Callable:
    def run(trial) -> float:
        if over_budget(study, trial, opts.trials):
            trial.set_user_attr("skipped", "the study's --trials budget was reached")
            raise RuntimeError("budget reached")
        return objective(trial)

    return run


def trial_line(t) -> str:
    """One log line per finished trial."""
    state = t.state.name
    value = f"{t.value:.4f}" if t.value is not None else "-"
    if state == "PRUNED" and t.intermediate_values:
        last = max(t.intermediate_values)
        value = f"{t.intermediate_values[last]:.4f} at epoch {last}"
    secs = f"{t.duration.total_seconds():.0f}s" if t.duration else "-"
    params = " ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    attrs = t.user_attrs
    extra = attrs.get("error") or attrs.get("stopped") or attrs.get("skipped") or ""
    return f"trial {t.number:>3} {state:<8} val mIoU {value:<18} {secs:>6}  {params}" + (
        f"  ({extra})" if extra else ""
    )


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def estimate_cost(opts: TuneOptions, base: RunConfig, study, log: Callable) -> None:
    """Print what the study will cost: trials x epochs, and minutes from a timed step of the
    base configuration's model (the models in the space differ; the first trial tells more)."""
    todo = max(0, opts.trials - sum(counts_toward_budget(t) for t in study.trials))
    epochs = todo * opts.epochs_per_trial
    line = (
        f"budget: {todo} trial(s) to run x {opts.epochs_per_trial} epoch(s) = at most "
        f"{epochs} epochs (pruning stops bad trials early)"
    )
    if opts.minutes_per_trial:
        line += f", at most {opts.minutes_per_trial:g} min per trial"
    if todo == 0:
        log(line)
        return
    with contextlib.suppress(Exception):  # an estimate must never stop the study
        d = base.data
        train_src, val_src, _ = open_train_val(d)
        sizes = [image_size(i.image) for i in spread(train_src.items, 5)]
        native = tuple(sorted(sizes)[len(sizes) // 2])
        val_hw = tuple(d.resize) if d.resize else native
        train_hw = tuple(d.crop_size) if d.crop_size else val_hw
        device = pick_device(base.train.device)
        configure_threads(device, 1, base.train.threads)
        cost = measure_model_cost(
            base.model.name,
            base.model.knobs,
            train_src.classes.num_classes,
            device,
            max_hw=train_hw,
            min_step_s=0.1,
            encoder_frozen_stride=base.train.encoder_frozen_stride,
        )
        epoch_s = cost.epoch_seconds(
            len(train_src),
            train_hw,
            len(val_src),
            val_hw,
            base.train.batch_size,
            base.train.max_steps_per_epoch,
        )
        total = epoch_s * epochs
        if opts.minutes_per_trial:
            total = min(total, todo * 60 * opts.minutes_per_trial)
        line += (
            f"; about {total / 60:.1f} min on this machine ({base.model.name} timed: "
            f"~{epoch_s:.1f} s/epoch; other models in the space differ)"
        )
    log(line)
