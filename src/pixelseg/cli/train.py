"""pixelseg train: train a model on a dataset folder (or resume a run)."""

from __future__ import annotations

import argparse
import time

from ..config import TRACKERS
from ..config_overrides import Overrides
from ..engine.distributed import finish_process
from ..workflows.train import train_and_report
from ._common import CONFIG_FLAGS

COMMAND = "train"
HELP = "train a model on your images (or resume a run)"
ORDER = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset folder (sets data.root)")
    p.add_argument("--format", help="dataset format (default: auto-detect)")
    p.add_argument("--model", help="model name (see `pixelseg models`)")
    p.add_argument("--config", help="YAML configuration file")
    p.add_argument("--name", help="run name (folder under --out-dir); default: model-timestamp")
    p.add_argument("--out-dir", help="where runs go (default: runs)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--budget-minutes",
        type=float,
        help="wall-time budget of the whole run: epochs are fitted to it as they are measured "
        "(sets train.time_budget_minutes; a planned run defaults to 30 on a CPU, 60 on a GPU)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--deterministic", action="store_true", help="bit-for-bit reproducible run")
    p.add_argument(
        "--skip-bad", action="store_true", help="train without bad samples (listed in the run)"
    )
    p.add_argument(
        "--track",
        action="append",
        choices=TRACKERS,
        help="watch the run in TensorBoard (event files in the run folder) or MLflow "
        "(MLFLOW_TRACKING_URI); give it twice for both (sets train.track)",
    )
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="train N times with seeds seed, seed+1, ... and report mean and std",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--no-plan",
        action="store_true",
        help="without model options, train the defaults instead of planning (see `pixelseg plan`)",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. train.lr=3e-4 model.depth=3"
    )


def cli_overrides(args: argparse.Namespace) -> Overrides:
    """Named flags become typed overrides (``CONFIG_FLAGS`` and the switches below) placed
    before the free-form ``key=value`` ones, which are parsed once, in the same call."""
    flags = {key: getattr(args, flag) for flag, key in CONFIG_FLAGS.items()}
    flags["train.deterministic"] = True if args.deterministic else None
    flags["data.skip_bad"] = True if args.skip_bad else None
    flags["train.track"] = list(dict.fromkeys(args.track)) if args.track else None
    return Overrides.command_line(flags, args.overrides)


def run(args: argparse.Namespace) -> int:
    """Train (or resume); under torchrun the process ends here (``finish_process``)."""
    started = time.time()  # the time budget counts from the command: planning counts too
    train_and_report(
        args.config,
        cli_overrides(args),
        resume_run=args.resume,
        plan=not (args.model or args.no_plan),
        seeds=args.seeds,
        progress=not args.quiet,
        started=started,
    )
    return finish_process(0)
