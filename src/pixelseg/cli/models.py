"""``pixelseg models``: every registered model with its family, description and knobs."""

from __future__ import annotations

import argparse
import json

COMMAND = "models"
HELP = "list the registered models with their knobs and defaults"
ORDER = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    entries = list_models()
    if args.json:
        data = [
            {
                "name": e.name,
                "family": e.family,
                "description": e.description,
                "knobs": {k: list(v) if isinstance(v, tuple) else v for k, v in e.knobs().items()},
            }
            for e in entries
        ]
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        print(f"{e.name:<{width}}  [{e.family}]  {e.description}")
        knobs = "  ".join(f"{k}={_show(v)}" for k, v in e.knobs().items())
        print(f"{'':<{width}}  {knobs}")
    return 0


def _show(value: object) -> str:
    # Shown the way it is typed on the command line (key=value, YAML).
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
