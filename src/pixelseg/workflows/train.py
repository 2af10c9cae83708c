"""``pixelseg train`` as one call: plan when no model was chosen, train (or resume, or train
several seeds), then evaluate the best checkpoint and build the run's report.

The configuration is loaded once: the user's overrides (parsed once, ``Overrides``), then the
plan's typed choices applied to it, under the keys the user set. What follows training
(``finish_run``) is given the configuration the run trained with (``TrainResult.config``)
rather than parsing the run's config.yaml again."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..analysis.run_report import finish_run
from ..config import RunConfig, load_config
from ..config_overrides import Overrides, as_overrides
from ..engine.distributed import is_main_process
from ..engine.trainer import TrainResult, resume, train
from ..tuning.plan import Plan, self_configure
from .seeds import SeedsResult, train_seeds


def train_and_report(
    config: str | Path | None = None,
    overrides: Overrides | Sequence[str] = (),
    *,
    resume_run: str | Path | None = None,
    plan: bool = True,
    seeds: int = 1,
    progress: bool = True,
    started: float | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult | SeedsResult:
    """Train from ``config`` (a YAML file, or None) and overrides (``key=value`` strings or
    ``Overrides``), the way ``pixelseg train`` does, and finish the run (best checkpoint
    evaluated, report.html).

    Without a config file, ``plan=True`` and no ``model.*`` override, a plan chosen from the
    dataset and this machine goes under the overrides (``pixelseg plan`` shows it) and is saved
    in the run. ``resume_run`` continues that run instead (the overrides apply to it);
    ``seeds > 1`` trains that many runs with consecutive seeds and returns their summary.
    ``started`` (a ``time.time()``) is when the time budget began: planning counts too.

    >>> result = pixelseg.train_and_report(overrides=["data.root=my_data"])  # doctest: +SKIP
    """
    started = time.time() if started is None else started
    user = as_overrides(overrides)
    planned = None
    if resume_run:
        result = resume(resume_run, user, progress=progress)
    else:
        chose_model = config is not None or not plan
        cfg = load_config(config, user)
        planned = apply_plan_if_unconfigured(cfg, user, chose_model, log=log)
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
        finish_run(result.run_dir, log=log, config=result.config)
        budget = result.config.train.time_budget_minutes
        if budget:
            log(
                f"wall time {(time.time() - started) / 60:.1f} min of the {budget:g} min budget "
                "(set-up, training, evaluation and report)"
            )
    return result


def apply_plan_if_unconfigured(
    cfg: RunConfig,
    overrides: Overrides,
    chose_model: bool = False,
    world_size: int | None = None,
    log: Callable[[str], None] = print,
) -> Plan | None:
    """The rule of ``pixelseg train``: when the user chose no model (``chose_model`` is false:
    no --model, --config, --resume or --no-plan; and no ``model.*`` override), plan one for
    ``cfg`` and apply the plan's choices to it, in place (``self_configure``); the keys the
    user set in ``overrides`` stay theirs. ``world_size``: the number of training processes
    (default: torchrun's). Returns the plan, or None when there is none."""
    if chose_model or sets_model(overrides):
        return None
    plan = self_configure(cfg, overrides, world_size, log)
    if plan is not None:
        log(
            "(pass --model, --config or model.* to choose yourself; "
            "any key=value overrides the plan)"
        )
    return plan


def sets_model(overrides: Overrides) -> bool:
    """A ``model`` or ``model.*`` key among the overrides: the user chose the model."""
    return any(key == "model" or key.startswith("model.") for key, _ in overrides.pairs)
