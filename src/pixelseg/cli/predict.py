"""pixelseg predict: segment images with a trained run or an exported ONNX model."""

from __future__ import annotations

import argparse

from ..deploy.batch_listing import Shard
from ..deploy.batch_pipeline import PredictOptions
from ..deploy.predict_images import predict_images
from ..errors import PixelsegError
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
        help="a text file of image paths, one per line (streamed: any length), read from "
        "--root (default: the list's folder); outputs keep each path's folders relative to it "
        "under --out, and a path outside it fails",
    )
    p.add_argument(
        "--root",
        help="the folder --files entries are read from and mirrored by (default: the folder "
        "of the list file); an entry outside it fails",
    )
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
    options = PredictOptions(
        **inference_options(args),
        instances=args.instances,
        min_area=args.min_area,
        batch_size=args.batch_size,
        workers=args.workers,
    )
    summary = predict_images(
        args.model,
        args.images,
        args.out,
        files=args.files,
        root=args.root,
        options=options,
        shard=Shard.resolve(args.num_parts, args.part_id),
        device=args.device,
        progress=not args.quiet,
    )
    print(
        f"{summary.processed} images segmented ({summary.images_per_second:.1f} img/s), "
        f"{summary.skipped} already done; outputs in {summary.out_dir}, log {summary.log}"
    )
    if summary.failed:
        image, error = summary.failed[0]
        more = f" (and {len(summary.failed) - 1} more, logged)" if len(summary.failed) > 1 else ""
        raise PixelsegError(f"{error}{more}; the other images are done, re-run to retry")
    return 0
