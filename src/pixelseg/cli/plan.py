"""pixelseg plan DATA: fingerprint the dataset and this machine and print the training plan
that ``pixelseg train --data DATA`` (without model options) would apply. Nothing is trained.

key=value overrides are constraints the plan works around (``train.batch_size=2``); --save
writes the resulting full configuration, for ``pixelseg train --config plan.yaml``.
"""

from __future__ import annotations

import argparse

from ..config_overrides import Overrides
from ..workflows.plan import plan_training
from ._common import CONFIG_FLAGS

COMMAND = "plan"
HELP = "print the training plan chosen from the dataset and hardware (self-configuration)"
ORDER = 12


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--format", help="dataset format (default: auto-detect)")
    p.add_argument("--device", help="plan for this device: auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--epoch-seconds", type=float, default=60.0, help="target seconds per epoch (default 60)"
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        help="total training time to plan for (default: 30 on CPU, 60 on a GPU)",
    )
    p.add_argument("--save", metavar="FILE", help="write the planned configuration (YAML)")
    p.add_argument("--json", metavar="FILE", help="write the plan and fingerprints (JSON)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="your choices; the plan keeps them and works around them",
    )


def run(args: argparse.Namespace) -> int:
    # --budget-minutes is a planning target here, not train.time_budget_minutes
    plan_training(
        Overrides.command_line(
            {CONFIG_FLAGS[flag]: getattr(args, flag) for flag in ("data", "format", "device")},
            args.overrides,
        ),
        epoch_seconds=args.epoch_seconds,
        budget_minutes=args.budget_minutes,
        save=args.save,
        json_file=args.json,
    )
    return 0
