"""pixelseg robustness: mIoU under corruptions x severities, and prediction consistency."""

from __future__ import annotations

import argparse

from ..analysis.corruptions import CORRUPTIONS
from ..errors import PixelsegError
from ..workflows.robustness import robustness

COMMAND = "robustness"
HELP = "robustness to corruptions (noise, blur, weather-like, JPEG, geometry) and stability"
ORDER = 25


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--data", help="dataset folder (default: the one the run trained on)")
    p.add_argument("--format", default="auto")
    p.add_argument("--split", default="val")
    p.add_argument("--corruptions", help=f"comma-separated subset of: {', '.join(CORRUPTIONS)}")
    p.add_argument("--severities", default="1,2,3,4,5")
    p.add_argument("--max-images", type=int, help="evaluate on the first N images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--trained-corruptions",
        help="comma-separated corruptions to report as seen in training (default: the run's "
        "augment.corruptions; give another run's list to compare a baseline on the same groups)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    names = args.corruptions.split(",") if args.corruptions else None
    for name in names or []:
        if name not in CORRUPTIONS:
            raise PixelsegError(
                f"--corruptions {name}: unknown; choose from {', '.join(CORRUPTIONS)}"
            )
    try:
        severities = [int(s) for s in args.severities.split(",")]
    except ValueError:
        raise PixelsegError(
            f"--severities {args.severities}: expected numbers like 1,3,5"
        ) from None
    trained = tuple(args.trained_corruptions.split(",")) if args.trained_corruptions else None
    for name in trained or ():
        if name not in CORRUPTIONS:
            raise PixelsegError(
                f"--trained-corruptions {name}: unknown; choose from {', '.join(CORRUPTIONS)}"
            )
    out = robustness(
        args.run,
        args.data,
        args.split,
        args.format,
        names,
        severities,
        max_images=args.max_images,
        seed=args.seed,
        trained_corruptions=trained,
        device=args.device,
        progress=not args.quiet,
    )
    print(out.result.table())
    print()
    print(out.consistency.table())
    print(
        f"\nsaved {out.files[0].parent}/robustness.json, consistency.json, robustness.png; "
        f"report {out.report}"
    )
    return 0
