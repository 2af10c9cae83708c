"""pixelseg tune: search models and hyperparameters with Optuna (pip install "pixelseg[tune]").

    pixelseg tune --data DATA --trials 50 [--epochs-per-trial 5] [--space space.yaml]
                  [--study NAME] [--out DIR] [--storage URL] [--timeout SECONDS]
                  [--minutes-per-trial M] [--pruner median|halving|none] [key=value ...]

key=value overrides (and --config) set the base configuration every trial starts from. Run the
same command again to resume an interrupted study, or in several terminals (or machines, with
a shared --storage URL) to run trials in parallel. The search space format is documented in
pixelseg/tuning/space.py.
"""

from __future__ import annotations

import argparse

COMMAND = "tune"
HELP = "search models and hyperparameters (Optuna; resumable, parallel workers)"
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset folder (sets data.root)")
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        help="trials in the whole study, shared by all workers (default 20)",
    )
    p.add_argument("--timeout", type=float, help="seconds; this worker starts no trial after it")
    p.add_argument("--epochs-per-trial", type=int, default=5, help="training epochs per trial")
    p.add_argument("--minutes-per-trial", type=float, help="stop a trial after this many minutes")
    p.add_argument("--study", default="study", help="study name (default: study)")
    p.add_argument("--out", default="tune", help="output folder (default: tune)")
    p.add_argument("--storage", help="Optuna database URL (default: sqlite <out>/<study>/study.db)")
    p.add_argument(
        "--space",
        help="search space YAML (format: pixelseg/tuning/space.py), or 'local': the base "
        "configuration's model, its numbers searched around the base values",
    )
    p.add_argument(
        "--pruner",
        default="median",
        choices=["median", "halving", "none"],
        help="stop bad trials early by their val mIoU per epoch (default: median)",
    )
    p.add_argument("--config", help="base configuration file")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--verbose", action="store_true", help="print every trial's epochs")
    p.add_argument(
        "--no-base-trial",
        action="store_true",
        help="do not start a new study with the base configuration as trial 0",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="base configuration, e.g. train.max_steps_per_epoch=50",
    )


def run(args: argparse.Namespace) -> int:
    from ..tuning import require_optuna
    from ..tuning.options import TuneOptions
    from ..tuning.space import LOCAL, load_space
    from ..workflows.tune import run_study

    require_optuna()
    opts = TuneOptions(
        data=args.data,
        trials=args.trials,
        out=args.out,
        study=args.study,
        storage=args.storage,
        space=LOCAL if args.space == LOCAL else load_space(args.space),
        epochs_per_trial=args.epochs_per_trial,
        minutes_per_trial=args.minutes_per_trial,
        timeout=args.timeout,
        pruner=args.pruner,
        seed=args.seed,
        config=args.config,
        overrides=list(args.overrides),
        verbose=args.verbose,
        enqueue_base=not args.no_base_trial,
    )
    summary = run_study(opts)
    return 0 if summary.best_number is not None else 1
