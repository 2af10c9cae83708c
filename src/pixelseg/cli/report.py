"""pixelseg report: (re)build a run's self-contained report.html."""

from __future__ import annotations

import argparse

from ..analysis.run_report import build_run_report

COMMAND = "report"
HELP = "build a run's report.html: curves, per-class bars, confusion matrix, overlays"
ORDER = 27


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--split", default="val", help="split whose images are shown as examples")


def run(args: argparse.Namespace) -> int:
    print(f"report: {build_run_report(args.run, args.split)}")
    return 0
