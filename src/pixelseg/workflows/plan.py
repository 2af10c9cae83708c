"""``pixelseg plan`` as one call: the training plan for a dataset and this machine, printed
and, on request, saved as a configuration (YAML) and as JSON. Nothing is trained."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import apply_overrides, load_config
from ..config_overrides import Overrides, as_overrides
from ..files import atomic_write_text
from ..tuning.ladder import Targets
from ..tuning.plan import Plan, plan_for_config

# Keys that say what to plan for, not choices the plan must keep.
_NOT_FIXED = ("data.root", "data.format", "train.device")


def plan_training(
    overrides: Overrides | Sequence[str],
    epoch_seconds: float = 60.0,
    budget_minutes: float | None = None,
    save: str | Path | None = None,
    json_file: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Plan:
    """Plan training for ``overrides`` (``data.root=...`` at least; any other key is a choice
    the plan keeps and works around), with epochs of about ``epoch_seconds`` and
    ``budget_minutes`` of training in all (None: 30 on a CPU, 60 on a GPU). ``save``: write the
    planned full configuration, for ``pixelseg train --config``; ``json_file``: the plan and
    the fingerprints as JSON.

    >>> plan = pixelseg.plan_training(["data.root=my_data"], save="plan.yaml")  # doctest: +SKIP
    """
    user = as_overrides(overrides)
    cfg = load_config(None, user)
    fixed = {k: v for k, v in user.flat().items() if k not in _NOT_FIXED}
    targets = Targets(epoch_seconds=epoch_seconds, total_minutes=budget_minutes)
    plan = plan_for_config(cfg, fixed, targets, log=log)
    log(plan.table())
    log("as overrides: " + " ".join(plan.overrides()))
    if save:
        apply_overrides(cfg, plan.planned())  # under the user's keys, which it left alone
        atomic_write_text(
            save, "# pixelseg plan: " + " ".join(plan.overrides()) + "\n" + cfg.to_yaml()
        )
        log(f"configuration saved to {save}")
    if json_file:
        atomic_write_text(json_file, json.dumps(plan.to_dict(), indent=1, default=str) + "\n")
        log(f"plan saved to {json_file}")
    return plan
