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
from ..config import RunConfig, apply_overrides, load_config
from ..config_overrides import Overrides, as_overrides
from ..engine.distributed import is_main_process, launched_world_size
from ..engine.trainer import TrainResult, resume, train
from ..tuning.plan import Plan, plan_for_config
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
        planned = apply_plan_if_unconfigured(cfg, user, chose_model, launched_world_size(), log)
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


def is_unconfigured(overrides: Overrides, chose_model: bool = False) -> bool:
    """No model options: ``chose_model`` is false (for ``pixelseg train``: no --model, --config,
    --resume or --no-plan) and no ``model.*`` override."""
    if chose_model:
        return False
    return not any(k.startswith("model.") or k == "model" for k in overrides.keys())


def apply_plan_if_unconfigured(
    cfg: RunConfig,
    overrides: Overrides,
    chose_model: bool = False,
    world_size: int = 1,
    log: Callable[[str], None] = print,
) -> Plan | None:
    """The rule of ``pixelseg train``: when the user chose no model (``is_unconfigured``), plan
    one for ``cfg`` and apply the plan's choices to it, in place; the keys the user set in
    ``overrides`` stay theirs. ``world_size``: the number of training processes (torchrun's).
    Returns the plan, or None when there is none."""
    if not is_unconfigured(overrides, chose_model):
        return None
    if world_size > 1:
        # Each process would time the models itself and could plan differently.
        log(
            "self-configuration is off under torchrun: run `pixelseg plan --data DIR --save "
            "plan.yaml` once and train with --config plan.yaml"
        )
        return None
    if not cfg.data.root:
        return None  # the trainer names the missing key
    plan = plan_for_config(cfg, overrides.flat(), log=log)
    log(plan.table())
    log("(pass --model, --config or model.* to choose yourself; any key=value overrides the plan)")
    apply_overrides(cfg, plan.planned())
    return plan
