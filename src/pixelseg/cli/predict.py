"""pixelseg predict: segment images with a trained run or an exported ONNX model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..deploy.batch import (
    PredictOptions,
    Shard,
    count_file_list,
    expand_images,
    flat_names,
    predict_stream,
    read_file_list,
)
from ..deploy.predict import load
from ..errors import PixelsegError
from ..files import atomic_write_text
from ._common import add_inference_arguments, inference_options

COMMAND = "predict"
HELP = "segment images: class-id mask PNG, colour overlay and uncertainty map per image"
ORDER = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder, checkpoint .json, or an exported .onnx file")
    p.add_argument("images", nargs="*", help="image files or folders")
    p.add_argument(
        "--files",
        metavar="LIST",
        help="a text file of image paths, one per line (streamed: any length); outputs keep "
        "each path's folders under --out",
    )
    p.add_argument("--root", help="folder that relative paths in --files are relative to")
    p.add_argument("--out", required=True, help="output folder")
    add_inference_arguments(p)
    p.add_argument(
        "--instances",
        action="store_true",
        help="split each class into connected objects: JSON + instance overlay",
    )
    p.add_argument(
        "--min-area", type=int, default=16, help="drop objects smaller than this (pixels)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="images of one size per forward")
    p.add_argument("--workers", type=int, default=2, help="decoder threads and writer threads")
    p.add_argument("--num-parts", type=int, default=1, help="split the images into N parts")
    p.add_argument("--part-id", type=int, default=0, help="which part this process segments")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    if bool(args.images) == bool(args.files):
        raise PixelsegError("predict: give image files or folders, or --files LIST (not both)")
    if args.batch_size < 1 or args.workers < 1:
        raise PixelsegError("--batch-size and --workers must be at least 1")
    options = PredictOptions(
        **inference_options(args),
        instances=args.instances,
        min_area=args.min_area,
        batch_size=args.batch_size,
        workers=args.workers,
    )
    shard = Shard.resolve(args.num_parts, args.part_id)
    out = Path(args.out)
    if args.files:
        root = Path(args.root) if args.root else None
        kwargs = dict(
            entries=read_file_list(args.files),
            total=count_file_list(args.files),
            resolve=(lambda e: root / e) if root else Path,
        )
    else:
        paths = expand_images(args.images)
        names = flat_names(paths)
        kwargs = dict(entries=paths, total=len(paths), name_of=names.__getitem__)
    predictor = load(args.model, args.device)
    summary = predict_stream(
        predictor,
        out_dir=out,
        options=options,
        shard=shard,
        progress=not args.quiet,
        keep_records=not args.files,
        **kwargs,
    )
    if not args.files:  # a small job also gets the whole table as one JSON file
        atomic_write_text(out / "predictions.json", json.dumps(summary.records, indent=1))
    print(
        f"{summary.processed} images segmented ({summary.images_per_second:.1f} img/s), "
        f"{summary.skipped} already done; outputs in {out}, log {summary.log}"
    )
    if summary.failed:
        image, error = summary.failed[0]
        more = f" (and {len(summary.failed) - 1} more, logged)" if len(summary.failed) > 1 else ""
        raise PixelsegError(f"{error}{more}; the other images are done, re-run to retry")
    return 0
