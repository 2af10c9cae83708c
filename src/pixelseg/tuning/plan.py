"""Self-configuration: a dataset and hardware fingerprint turned into a training plan.

``pixelseg plan --data DIR`` prints the plan; ``pixelseg train --data DIR`` without model
options applies it (``self_configure``), prints it and saves it in the run as plan.json. A plan
is a list of typed choices with a reason each; the keys the user set are kept ("yours") and the
plan works around them (a batch size you fix is the one the epoch estimate uses).

How the choices are made (nnU-Net's idea, with a time budget instead of a GPU-memory one):

1. Model and resolution: the ladder search (``ladder.py``), from timed training steps on this
   machine (``cost.py``).
2. Batch, epochs, class weights, augmentation, cache and corruptions: the rules in
   ``plan_rules.py``, each a small function of the data and machine facts and of the model.

The measurements behind the ladders and the rules are in docs/results.md ("The planner's
rules").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides
from ..config_overrides import Overrides, format_value
from ..data.pipeline import open_train_val
from ..engine.device import configure_threads, pick_device
from ..engine.distributed import launched_world_size
from ..files import atomic_write_text
from .constraints import Constraints
from .cost import MeasuredCosts, measure_data_cost
from .fingerprint import (
    DatasetFingerprint,
    HardwareFingerprint,
    fingerprint_dataset,
    fingerprint_hardware,
)
from .ladder import CostFn, Targets, fits_budget, model_reason, search_ladder
from .plan_rules import (
    PLAN_CORRUPTIONS,
    choose_augmentation,
    choose_cache,
    choose_class_weights,
    choose_epochs,
    corruption_recipe,
    short_number,
    starts_pretrained,
)


@dataclass
class Choice:
    key: str
    value: Any
    reason: str
    source: str = "plan"  # "plan", or "yours" when the user's override sets the key


@dataclass
class Plan:
    choices: list[Choice]
    dataset: DatasetFingerprint
    hardware: HardwareFingerprint
    estimates: dict = field(default_factory=dict)

    def planned(self) -> Overrides:
        """The plan's own choices, typed, to apply under the user's (which it left alone)."""
        return Overrides.of({c.key: c.value for c in self.choices if c.source == "plan"})

    def overrides(self) -> list[str]:
        """The plan's own choices as ``key=value`` text (plan.json, the log, --save)."""
        return self.planned().format()

    def value(self, key: str) -> Any:
        return next(c.value for c in self.choices if c.key == key)

    def table(self) -> str:
        ds, hw = self.dataset, self.hardware
        h, w = ds.median_hw
        head = (
            f"plan: {ds.format} layout, {ds.n_train} train / {ds.n_val} val images, "
            f"{ds.num_classes} classes, median size {h}x{w}; {hw.text()}"
        )
        rows = [
            (c.key, format_value(c.value) + (" (yours)" if c.source == "yours" else ""), c.reason)
            for c in self.choices
        ]
        kw = max(len("choice"), *(len(r[0]) for r in rows))
        vw = max(len("value"), *(len(r[1]) for r in rows))
        lines = [head, f"  {'choice':<{kw}}  {'value':<{vw}}  reason"]
        lines += [f"  {k:<{kw}}  {v:<{vw}}  {r}" for k, v, r in rows]
        est = self.estimates
        if "epoch_seconds" in est:
            lines.append(
                f"estimated: ~{short_number(est['epoch_seconds'])} s per epoch, "
                f"~{short_number(est['total_minutes'])} min for {est['epochs']} epochs "
                f"(timed on this machine; a busy machine is slower)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "choices": [c.__dict__ for c in self.choices],
            "overrides": self.overrides(),
            "dataset": self.dataset.to_dict(),
            "hardware": self.hardware.to_dict(),
            "estimates": self.estimates,
        }

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / "plan.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        return path


def make_plan(
    ds: DatasetFingerprint,
    hw: HardwareFingerprint,
    cost_fn: CostFn,
    fixed: Constraints | Mapping[str, Any] | None = None,
    targets: Targets | None = None,
) -> Plan:
    """Decide the plan from the fingerprints; ``fixed``: what the user set (``Constraints``,
    or their flat keys, ``Overrides.flat()``)."""
    fixed = fixed if isinstance(fixed, Constraints) else Constraints.of(fixed)
    targets = targets or Targets()
    if fixed.budget_minutes:  # --budget-minutes: the plan's budget too
        targets = dataclasses.replace(targets, total_minutes=fixed.budget_minutes)
    result = search_ladder(ds, hw, fixed, targets, cost_fn)
    best, geo = result.best, result.best.geometry
    choices: list[Choice] = []

    def add(key: str, value: Any, reason: str) -> None:
        if key in fixed.values:
            mine = fixed.values[key]
            choices.append(Choice(key, mine, "set by you (the plan works around it)", "yours"))
        else:
            choices.append(Choice(key, value, reason))

    h, w = ds.median_hw
    fits = fits_budget(best, targets)
    if geo.resize:
        add("data.resize", geo.resize, geo.reason or f"downscaled x{best.scale:g}")
    else:
        add(
            "data.resize",
            None,
            f"full resolution {h}x{w}"
            + (" fits the time budget" if fits and best.scale == 1 else ""),
        )
    add("data.crop_size", geo.crop, geo.reason if geo.crop else "whole images")
    add("model.name", best.model, model_reason(result, targets))
    for knob, value in best.knobs.items():
        add(f"model.{knob}", value, "see model.name")
    add("train.batch_size", best.batch, best.batch_reason)
    total_s = targets.total_seconds(hw)
    epochs, epochs_reason = choose_epochs(
        ds.n_train, best.batch, best.epoch_s, total_s, targets.steps_wanted
    )
    if fixed.epochs is not None:
        epochs = fixed.epochs
    add("train.epochs", epochs, epochs_reason)
    if fixed.epochs is not None and fixed.budget_minutes is None:
        # A budget re-fits the epoch count after every epoch: it would overrule yours.
        add("train.time_budget_minutes", None, "your train.epochs: exactly that many, no budget")
    else:
        add(
            "train.time_budget_minutes",
            round(total_s / 60, 2),
            "the run fills this budget: after each epoch the number of epochs, and the lr "
            "schedule with it, is re-fitted to the measured time (validation, checkpoints and "
            "the final evaluation included)",
        )
    add("train.class_weights", *choose_class_weights(ds))
    rotation, scale_range, why = choose_augmentation(ds.n_train, starts_pretrained(best.knobs))
    add("augment.rotation", rotation, why)
    add("augment.scale", scale_range, why)
    recipe = corruption_recipe(best.model, best.knobs)
    add("augment.corruptions", PLAN_CORRUPTIONS, recipe.reason)
    add("augment.corruption_p", recipe.p, recipe.reason)
    if fixed.corruption_p is not None:  # your rate stays constant unless you schedule it
        add("augment.corruption_p_final", None, "your augment.corruption_p, kept constant")
    else:
        add("augment.corruption_p_final", recipe.p_final, recipe.reason)
    add("augment.corruption_max_severity", recipe.max_severity, recipe.reason)
    add("data.cache", *choose_cache(ds, hw))
    epoch_s = best.epoch_s  # estimated with the user's batch size and geometry, when fixed
    estimates = {
        "epoch_seconds": round(epoch_s, 2),
        "epochs": epochs,
        "total_minutes": round(epoch_s * epochs / 60, 2),
        "target_epoch_seconds": targets.epoch_seconds,
        "fits_budget": fits,
        "candidates": [
            {
                "model": o.model,
                "knobs": o.knobs,
                "scale": o.scale,
                "train_hw": list(o.geometry.train_hw),
                "batch": o.batch,
                "epoch_seconds": round(o.epoch_s, 1),
            }
            for o in result.tried
        ],
    }
    return Plan(choices, ds, hw, estimates)


def self_configure(
    cfg: RunConfig,
    user: Overrides,
    world_size: int | None = None,
    log: Callable[[str], None] = print,
) -> Plan | None:
    """Plan a model and its training for ``cfg`` around the keys set in ``user`` (kept,
    "yours"), log the plan and apply its choices to ``cfg``, in place. Returns the plan (the
    run's plan.json), or None: no ``data.root`` (the trainer names the missing key), or more
    than one process (``world_size``, by default torchrun's). When to plan at all is the
    train command's rule (``workflows/train.py``)."""
    fixed = user.flat()
    if (launched_world_size() if world_size is None else world_size) > 1:
        # Each process would time the models itself and could plan differently.
        log(
            "self-configuration is off under torchrun: run `pixelseg plan --data DIR --save "
            "plan.yaml` once and train with --config plan.yaml"
        )
        return None
    if not cfg.data.root:
        return None
    plan = plan_for_config(cfg, fixed, log=log)
    log(plan.table())
    apply_overrides(cfg, plan.planned())  # under the user's keys, which it left alone
    return plan


def plan_for_config(
    cfg: RunConfig,
    fixed: Constraints | Mapping[str, Any] | None = None,
    targets: Targets | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Plan:
    """Fingerprint ``cfg.data`` and this machine (``cfg.train.device``) and make a plan. The
    splits are opened, and the device resolved, once: the fingerprints and the timings share
    them."""
    train, val, _ = open_train_val(cfg.data)
    ds = fingerprint_dataset(train, val, progress=progress)
    device = pick_device(cfg.train.device)
    configure_threads(device, 1, cfg.train.threads)
    hw = fingerprint_hardware(device)
    log(f"planning: timing candidate models on {hw.device} (a few seconds)")
    costs = MeasuredCosts(
        ds.num_classes,
        device,
        ds.median_hw,
        measure_data_cost(train),
        cfg.train.encoder_frozen_stride,
    )
    return make_plan(ds, hw, costs, fixed, targets)
