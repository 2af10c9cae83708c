"""pixelseg eval: metrics of a trained run on a split, saved as JSON in the run."""

from __future__ import annotations

import argparse

from ..analysis.evaluation import evaluate_run, format_eval, save_eval
from ..data.formats import split_names
from ..runs import RunFolder
from ._common import add_inference_arguments, inference_options

COMMAND = "eval"
HELP = "evaluate a run: accuracy, precision, recall, IoU, F1, confusion matrix, overfitting gap"
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or a checkpoint .json)")
    p.add_argument("--data", help="dataset folder (default: the one the run trained on)")
    p.add_argument("--format", default="auto")
    p.add_argument("--split", default="val", help="train, val or test")
    add_inference_arguments(p)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def trained_on(run: str, split: str) -> str | None:
    """The run's train_split when it includes ``split`` (a final pass over train+val)."""
    folder = RunFolder(run)
    if not folder.has_config():
        return None  # a checkpoint .json: no run configuration to ask
    train_split = folder.config().data.train_split
    return train_split if split in split_names(train_split) else None


def run(args: argparse.Namespace) -> int:
    trained = None if args.data else trained_on(args.run, args.split)
    if trained:
        print(
            f"warning: {args.run} trained on its {args.split} split (data.train_split="
            f"{trained}): these scores measure fit, not generalisation"
        )
    result = evaluate_run(
        args.run,
        args.data,
        args.split,
        args.format,
        args.batch_size,
        **inference_options(args),
        device=args.device,
        progress=not args.quiet,
    )
    print(format_eval(result))
    print(f"saved {save_eval(result, args.run)}")
    return 0
