"""pixelseg robustness: mIoU under corruptions x severities, and prediction consistency."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..analysis.corruptions import CORRUPTIONS
from ..analysis.robustness import run_robustness, trained_corruptions_of
from ..analysis.run_report import build_run_report
from ..analysis.stability import prediction_consistency
from ..data.formats import open_split
from ..deploy.predict import load
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..runs import RunFolder
from .eval import data_root_of

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
    run_dir = Path(args.run)
    predictor = load(run_dir, args.device)
    source = open_split(args.data or data_root_of(args.run), args.split, args.format)
    n = min(len(source), args.max_images or len(source))
    samples = [source.load(i) for i in range(n)]
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

    trained = (
        tuple(args.trained_corruptions.split(","))
        if args.trained_corruptions
        else trained_corruptions_of(run_dir)
    )
    for name in trained:
        if name not in CORRUPTIONS:
            raise PixelsegError(
                f"--trained-corruptions {name}: unknown; choose from {', '.join(CORRUPTIONS)}"
            )

    def predict_fn(images):
        return [predictor.predict(im) for im in images]

    result = run_robustness(
        predict_fn,
        samples,
        predictor.num_classes,
        names,
        severities,
        seed=args.seed,
        progress=not args.quiet,
        trained_corruptions=trained,
    )
    consistency = prediction_consistency(predict_fn, [s.image for s in samples])
    folder = RunFolder(run_dir)
    out = folder.robustness_dir
    atomic_write_text(folder.robustness, json.dumps(result.to_dict(), indent=1))
    atomic_write_text(folder.consistency, json.dumps(consistency.to_dict(), indent=1))
    result.plot(folder.robustness_plot)
    print(result.table())
    print()
    print(consistency.table())
    report = build_run_report(run_dir)
    print(f"\nsaved {out}/robustness.json, consistency.json, robustness.png; report {report}")
    return 0
