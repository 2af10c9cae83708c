"""``pixelseg train`` as one call: plan when no model was chosen, train (or resume, or train
several seeds), then evaluate the best checkpoint and build the run's report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import load_config
from ..engine.distributed import is_main_process, launched_world_size
from ..engine.trainer import TrainResult, resume, train
from ..runs import RunFolder
from ..tuning.plan import apply_plan_if_unconfigured
from .run_report import finish_run
from .seeds import SeedsResult, train_seeds


def train_and_report(
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    resume_run: str | Path | None = None,
    plan: bool = True,
    seeds: int = 1,
    progress: bool = True,
    started: float | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult | SeedsResult:
    """Train from ``config`` (a YAML file, or None) and ``key=value`` overrides, the way
    ``pixelseg train`` does, and finish the run (best checkpoint evaluated, report.html).

    Without a config file, ``plan=True`` and no ``model.*`` override, a plan chosen from the
    dataset and this machine goes before the overrides (``pixelseg plan`` shows it) and is saved
    in the run. ``resume_run`` continues that run instead (the overrides apply to it);
    ``seeds > 1`` trains that many runs with consecutive seeds and returns their summary.
    ``started`` (a ``time.time()``) is when the time budget began: planning counts too.

    >>> result = pixelseg.train_and_report(overrides=["data.root=my_data"])  # doctest: +SKIP
    """
    started = time.time() if started is None else started
    overrides = list(overrides)
    planned = None
    if resume_run:
        result = resume(resume_run, overrides, progress=progress)
    else:
        chose_model = config is not None or not plan
        overrides, planned = apply_plan_if_unconfigured(
            overrides, chose_model, launched_world_size(), log=log
        )
        cfg = load_config(config, overrides)
        if seeds > 1:
            out = train_seeds(cfg, seeds, progress=progress, log=log)
            log("\n" + out.table())
            log(f"seed variance over {seeds} runs saved in {out.path}")
            return out
        result = train(cfg, progress=progress, started=started)
        if planned is not None and is_main_process():
            planned.save(result.run_dir)
    log(
        f"best val mIoU {result.best_miou:.4f} at epoch {result.best_epoch}; "
        f"{result.seconds:.0f}s; run in {result.run_dir}"
    )
    if is_main_process():
        finish_run(result.run_dir, log=log)
        budget = RunFolder(result.run_dir).config().train.time_budget_minutes
        if budget:
            log(
                f"wall time {(time.time() - started) / 60:.1f} min of the {budget:g} min budget "
                "(set-up, training, evaluation and report)"
            )
    return result
