"""pixelseg demo: generate multi-object scenes, train the default CNN, evaluate, predict."""

from __future__ import annotations

import argparse

from ..workflows.demo import DEMO_COUNTS, DEMO_SIZE, demo
from ._common import parse_size

COMMAND = "demo"
HELP = "the whole pipeline on built-in multi-object scenes (about 2.5 minutes on 2 CPU cores)"
ORDER = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="pixelseg-demo", help="folder for data, run and predictions")
    p.add_argument("--epochs", type=int, help="override the demo's number of epochs")
    p.add_argument("--size", default=f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]}", help="scene size HxW")
    p.add_argument("--train-images", type=int, default=DEMO_COUNTS["train"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra training overrides")


def run(args: argparse.Namespace) -> int:
    result = demo(
        args.out,
        epochs=args.epochs,
        size=parse_size(args.size),
        train_images=args.train_images,
        overrides=args.overrides,
        progress=not args.quiet,
    )
    print("\n" + result.summary())
    return 0
