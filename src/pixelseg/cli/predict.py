"""pixelseg predict: segment images with a trained run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..analysis.instances import (
    extract_instances,
    instance_overlay,
    instances_to_json,
    uncertainty_map,
    uncertainty_to_image,
)
from ..data.imageio import IMAGE_EXTENSIONS, atomic_write_text, write_png
from ..deploy.predict import load, predict_files
from ..errors import PixelsegError
from ._common import add_inference_arguments, inference_options

COMMAND = "predict"
HELP = "segment images: class-id mask PNG and colour overlay per image"
ORDER = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or a checkpoint .json)")
    p.add_argument("images", nargs="+", help="image files or folders")
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
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def expand_images(items: list[str]) -> list[Path]:
    paths = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            paths.append(p)
        else:
            raise PixelsegError(f"{p}: no such image file or folder")
    if not paths:
        raise PixelsegError(f"{', '.join(items)}: no images found")
    return paths


def run(args: argparse.Namespace) -> int:
    paths = expand_images(args.images)
    predictor = load(args.run, args.device)
    out = Path(args.out)

    def more_outputs(image, probs, stem):
        """Uncertainty map always; objects with --instances."""
        class_map = probs.argmax(0)
        write_png(out / f"{stem}_uncertainty.png", uncertainty_to_image(uncertainty_map(probs)))
        record = {"uncertainty": str(out / f"{stem}_uncertainty.png")}
        if args.instances:
            found = extract_instances(class_map, probs, min_area=args.min_area)
            objects = instances_to_json(found, predictor.classes.names)
            atomic_write_text(out / f"{stem}_instances.json", json.dumps(objects, indent=1))
            write_png(out / f"{stem}_instances.png", instance_overlay(image, found))
            record["objects"] = len(objects)
        return record

    records = predict_files(
        predictor,
        paths,
        out,
        **inference_options(args),
        progress=not args.quiet,
        extra=more_outputs,
    )
    atomic_write_text(out / "predictions.json", json.dumps(records, indent=1))
    print(f"{len(records)} images segmented; masks and overlays in {out}")
    return 0
