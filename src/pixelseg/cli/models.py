"""``pixelseg models``: every registered model with its family, description and knobs (each
knob's default, type, valid values and help, as the model declares it), then the encoders a
model can take (``model.encoder``) and whether their ImageNet weights are installed."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the models (and torch) are imported only when the command runs
    from ..models.knobs import Knob

COMMAND = "models"
HELP = "list the registered models with their knobs, defaults and valid values"
ORDER = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--encoders",
        action="store_true",
        help="only the encoders (parameters, strides, channels, weights installed)",
    )


def encoder_rows() -> list[dict]:
    """Each encoder with its parameters, feature strides and channels, and whether its ImageNet
    weights are installed (and how to install them when not)."""
    from ..models.encoders import ENCODERS, build_encoder
    from ..models.encoders.pretrained import weights_installed

    rows = []
    for name, entry in ENCODERS.items():
        enc = build_encoder(name, "none")
        installed = weights_installed(name)
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "parameters": sum(p.numel() for p in enc.parameters()),
                "strides": list(enc.strides),
                "channels": list(enc.channels),
                "weights_installed": installed,
                "install": None if installed else entry.weights.pip_command(),
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    entries = list_models()
    if args.encoders:
        if args.json:
            print(json.dumps(encoder_rows(), indent=2))
        else:
            print_encoders(encoder_rows())
        return 0
    if args.json:
        data = [
            {
                "name": e.name,
                "family": e.family,
                "description": e.description,
                "knobs": {k.name: _plain(k.default) for k in e.declared},
                "knob_specs": {
                    k.name: {
                        "type": k.type_text(),
                        "default": _plain(k.default),
                        "valid": k.valid_text(),
                        "choices": _plain(k.choices),
                        "low": k.low,
                        "high": k.high,
                        "search": k.search_space(),
                        "help": k.help,
                    }
                    for k in e.declared
                },
            }
            for e in entries
        ]
        print(json.dumps(data, indent=2))
        return 0
    for e in entries:
        print(f"{e.name}  [{e.family}]  {e.description}")
        width = max((len(k.name) + len(show_value(k.default)) + 1 for k in e.declared), default=0)
        for k in e.declared:
            print(f"    {k.name + '=' + show_value(k.default):<{width}}  {k.help} ({_valid(k)})")
    print()
    print_encoders(encoder_rows())
    print("\nSet a knob with model.<knob>=value (train, tune) or <knob>=value (summary).")
    return 0


def print_encoders(encoders: list[dict]) -> None:
    print("encoders (model.encoder=NAME; native: the model's own, trained from scratch)")
    for r in encoders:
        weights = "ImageNet weights installed" if r["weights_installed"] else r["install"]
        print(
            f"  {r['name']}  {r['parameters'] / 1e6:.2f}M params, strides "
            f"{','.join(map(str, r['strides']))}, channels {','.join(map(str, r['channels']))}; "
            f"{weights}"
        )
        print(f"      {r['description']}")


def _valid(knob: Knob) -> str:
    """``integer >= 1; tuned: 8, 16, 32``: the type and valid values, then what tune tries."""
    if knob.choices is not None:
        text = knob.valid_text()
    else:
        kind = knob.type_text().split(" ", 1)[-1]  # "an integer" -> "integer"
        text = f"{'odd ' if knob.odd else ''}{kind} {knob.range_text()}".rstrip()
    search = knob.search_space()
    if isinstance(search, dict):
        text += f"; tuned: {search['low']}..{search['high']}"
    elif search is not None:
        text += "; tuned: " + ", ".join(map(str, search))
    return text


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def show_value(value: object) -> str:
    """A knob value as it is typed on the command line (YAML): ``[6,12,18]``, ``relu``."""
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
