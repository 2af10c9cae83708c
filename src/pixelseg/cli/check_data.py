"""pixelseg check-data DATA: find broken files, bad labels and class imbalance.

Exit status: 0 when no problem was found (warnings allowed unless --strict), 1 when problems
were found, 2 when the check could not run (handled by cli/main.py).
"""

from __future__ import annotations

import argparse
import json

COMMAND = "check-data"
HELP = "find broken files, unpaired or mismatched masks, bad labels and class imbalance"
ORDER = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("--format", default="auto", help="dataset layout (default: detect it)")
    p.add_argument("--fast", action="store_true", help="headers and sizes only, no full decode")
    p.add_argument("--plot", metavar="FILE", help="save a class-share bar plot (PNG, SVG, PDF)")
    p.add_argument("--json", metavar="FILE", help="save the full report as JSON")
    p.add_argument(
        "--workers", type=int, default=None, help="decoding threads (default: CPUs, 8 max)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")


def run(args: argparse.Namespace) -> int:
    from ..data.check import check_dataset
    from ..files import atomic_write_bytes

    report = check_dataset(
        args.data, format=args.format, full=not args.fast, workers=args.workers, progress=True
    )
    print(report.text())
    if args.plot:
        report.save_plot(args.plot)
        print(f"class plot saved to {args.plot}")
    if args.json:
        atomic_write_bytes(args.json, json.dumps(report.to_dict(), indent=1).encode())
        print(f"report saved to {args.json}")
    return 0 if report.ok and not (args.strict and report.warnings) else 1
