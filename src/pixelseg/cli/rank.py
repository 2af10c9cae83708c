"""pixelseg rank MODEL IMAGES... --out D: which images to label next (with pre-labels);
pixelseg rank MODEL --data DATA --split S --out D: which labels look wrong."""

from __future__ import annotations

import argparse

from ..errors import PixelsegError
from ..workflows.rank import rank_images, rank_labels
from ..workflows.rank_outputs import PRELABEL_FORMATS

COMMAND = "rank"
HELP = "what to label next (uncertain, diverse, pre-labelled), or which labels look wrong"
ORDER = 45


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="run folder, checkpoint .json or .onnx file")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="unlabelled image files or folders")
    p.add_argument("--files", metavar="LIST", help="a text file of image paths, one a line")
    p.add_argument("--root", help="folder the paths in --files are relative to (default: its own)")
    p.add_argument("--data", metavar="DATA", help="a labelled dataset: rank its labels instead")
    p.add_argument("--split", default="train", help="with --data: the split to check")
    p.add_argument("--format", default="auto", help="with --data: its layout")
    p.add_argument("--out", required=True, metavar="D", help="output folder (must not exist)")
    p.add_argument("--top", type=int, default=50, help="images drawn and pre-labelled")
    p.add_argument(
        "--prelabel-format", default="labelme", choices=PRELABEL_FORMATS, help="pre-label files"
    )
    p.add_argument(
        "--min-area", type=int, default=64, help="pre-label regions smaller than this are dropped"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.data:
        if args.images or args.files:
            raise PixelsegError("rank: give --data (to check labels) or images, not both")
        result = rank_labels(
            args.model,
            args.data,
            args.split,
            args.out,
            data_format=args.format,
            top=args.top,
            device=args.device,
            progress=not args.quiet,
        )
    else:
        result = rank_images(
            args.model,
            args.images,
            args.out,
            files=args.files,
            root=args.root,
            top=args.top,
            prelabel_format=args.prelabel_format,
            min_area=args.min_area,
            device=args.device,
            progress=not args.quiet,
        )
    print(result.summary())
    return 0
