"""pixelseg train: train a model on a dataset folder (or resume a run)."""

from __future__ import annotations

import argparse
import time

from ..analysis.run_report import finish_run
from ..analysis.seeds import train_seeds
from ..config import load_config
from ..engine.distributed import finish_process, is_main_process, launched_world_size
from ..engine.trainer import resume, train
from ..runs import RunFolder
from ..tuning.plan import apply_plan_if_unconfigured
from ._common import flag_overrides

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


def cli_overrides(args: argparse.Namespace) -> list[str]:
    """Named flags become key=value overrides placed before the free-form ones."""
    pairs = flag_overrides(args)
    if args.deterministic:
        pairs.append("train.deterministic=true")
    if args.skip_bad:
        pairs.append("data.skip_bad=true")
    return pairs + list(args.overrides)


def run(args: argparse.Namespace) -> int:
    """Train (or resume); under torchrun the process ends here (``finish_process``)."""
    return finish_process(_run(args))


def _run(args: argparse.Namespace) -> int:
    started = time.time()
    if args.resume:
        result = resume(args.resume, cli_overrides(args), progress=not args.quiet)
    else:
        # Without model options, a plan from the dataset and hardware goes before the user's
        # overrides (tuning/plan.py); plan is None otherwise.
        chose_model = bool(args.model or args.config or args.no_plan)
        overrides, plan = apply_plan_if_unconfigured(
            cli_overrides(args), chose_model, launched_world_size()
        )
        cfg = load_config(args.config, overrides)
        if args.seeds > 1:
            return run_seeds(cfg, args.seeds, progress=not args.quiet)
        result = train(cfg, progress=not args.quiet, started=started)  # planning counts too
        if plan is not None and is_main_process():
            plan.save(result.run_dir)
    print(
        f"best val mIoU {result.best_miou:.4f} at epoch {result.best_epoch}; "
        f"{result.seconds:.0f}s; run in {result.run_dir}"
    )
    if is_main_process():
        finish_run(result.run_dir)
        budget = RunFolder(result.run_dir).config().train.time_budget_minutes
        if budget:
            print(
                f"wall time {(time.time() - started) / 60:.1f} min of the {budget:g} min budget "
                "(set-up, training, evaluation and report)"
            )
    return 0


def run_seeds(cfg, n: int, progress: bool) -> int:
    out = train_seeds(cfg, n, progress=progress)
    print("\n" + out.table())
    print(f"seed variance over {n} runs saved in {out.path}")
    return 0
