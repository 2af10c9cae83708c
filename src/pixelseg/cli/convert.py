"""pixelseg convert SRC --to FORMAT OUT: a dataset written in another format."""

from __future__ import annotations

import argparse

from ..data.convert import WRITERS, convert_dataset

COMMAND = "convert"
HELP = "write a dataset in another format (mask-folder, labelme, yolo, coco)"
ORDER = 6


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="dataset folder (any format pixelseg reads)")
    p.add_argument("--to", required=True, choices=list(WRITERS), help="output format")
    p.add_argument("out", metavar="OUT", help="output folder (must not exist)")
    p.add_argument("--format", default="auto", help="SRC's layout (default: detect it)")
    p.add_argument("--splits", help="comma-separated splits (default: every split)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    result = convert_dataset(
        args.src,
        args.out,
        args.to,
        src_format=args.format,
        splits=args.splits.split(",") if args.splits else None,
        progress=not args.quiet,
    )
    print(result.summary())
    return 0
