"""pixelseg serve: an HTTP API and a web page for a run or an exported ONNX model."""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..deploy.serve import serve
from ..deploy.serve.limits import ServeLimits

COMMAND = "serve"
HELP = "serve a model over HTTP: POST /predict, GET /model, /health, /docs and a web page at /"
ORDER = 37


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder, checkpoint .json, or an exported .onnx file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads the model)")
    defaults = ServeLimits()
    for f in fields(ServeLimits):
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            help=f"(default {getattr(defaults, f.name)})",
        )


def run(args: argparse.Namespace) -> int:
    limits = ServeLimits(**{f.name: getattr(args, f.name) for f in fields(ServeLimits)})
    serve(args.model, args.host, args.port, args.workers, limits)
    return 0
