"""``pixelseg summary``: per-layer table, parameters, MACs and peak activation memory of a model.

Examples: ``pixelseg summary --model reseg --size 360x480``,
``pixelseg summary --model unet --size 256 depth=3 activation=gelu context=renet``.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import yaml

from ..errors import PixelsegError
from .models import show_value

if TYPE_CHECKING:
    from ..models import ModelEntry
from ._common import parse_size

COMMAND = "summary"
HELP = "show a model's layers, parameters, MACs/FLOPs and peak activation memory"
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="registered model name (see `pixelseg models`)"
    )
    parser.add_argument("--size", default="360x480", help="input HxW, e.g. 360x480 (or one number)")
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument(
        "--meta",
        action="store_true",
        help="build on the meta device: instant at any size, memory computed rather than run",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "knobs", nargs="*", metavar="key=value", help="model knobs, values parsed as YAML"
    )


def parse_knobs(items: list[str]) -> dict:
    """``["depth=3", "dilations=[6,12,18]"]`` -> {"depth": 3, "dilations": [6, 12, 18]}.

    ``model.depth=3`` works too, as ``pixelseg train`` spells it.
    """
    knobs = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("model.")
        if not sep or not key:
            raise PixelsegError(f"{item!r}: model knobs are given as key=value, e.g. depth=3")
        try:
            knobs[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise PixelsegError(f"model.{key}: cannot parse {value!r}: {e}") from None
    return knobs


def run(args: argparse.Namespace) -> int:
    import torch  # imported here so `pixelseg --help` stays fast

    from ..models import create_model, get_entry
    from ..models.summary import summarize

    size = parse_size(args.size)
    knobs = parse_knobs(args.knobs)
    # A summary needs shapes, not trained values: no pretrained weights are read.
    build = dict(load_weights=False, **knobs)
    if args.meta:
        with torch.device("meta"):
            model = create_model(args.model, args.num_classes, args.in_channels, **build)
    else:
        model = create_model(args.model, args.num_classes, args.in_channels, **build)
    summary = summarize(model, size, in_channels=args.in_channels, batch_size=args.batch_size)
    if args.json:
        print(json.dumps({"model": model.pixelseg_spec, **summary.to_dict()}, indent=2))
    else:
        print(knob_line(get_entry(args.model), model.pixelseg_spec["knobs"], set(knobs)))
        print(summary.table())
    return 0


def knob_line(entry: ModelEntry, values: dict, given: set[str]) -> str:
    """``model: unet  depth=3  (defaults: width=32 ...)``, in the order the model declares its
    knobs: the ones given first, then the defaults."""
    shown = {k.name: f"{k.name}={show_value(values[k.name])}" for k in entry.declared}
    set_ = [shown[k] for k in shown if k in given]
    rest = [shown[k] for k in shown if k not in given]
    line = f"model: {entry.name}  " + " ".join(set_)
    return (line.rstrip() + (f"  (defaults: {' '.join(rest)})" if rest else "")).strip()
