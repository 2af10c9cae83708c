"""pixelseg serve: an HTTP API and a web page for a run or an exported ONNX model."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields

from ..deploy.serve_limits import ServeLimits
from ..errors import PixelsegError

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
    try:
        import uvicorn

        from ..deploy.serve import create_app
    except ImportError as e:
        raise PixelsegError(
            f'serve needs the serve extra ({e.name} is missing): pip install "pixelseg[serve]"'
        ) from None
    from ..deploy.predict import load

    if args.workers < 1:
        raise PixelsegError("--workers must be at least 1")
    limits = ServeLimits(**{f.name: getattr(args, f.name) for f in fields(ServeLimits)})
    print(f"pixelseg serve: http://{args.host}:{args.port}/ (API docs at /docs)")
    if args.workers == 1:
        app = create_app(load(args.model), limits)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    load(args.model)  # fail here, in one line, rather than in every worker
    os.environ["PIXELSEG_SERVE_MODEL"] = str(args.model)
    for f in fields(ServeLimits):
        os.environ[f"PIXELSEG_SERVE_{f.name.upper()}"] = str(getattr(limits, f.name))
    uvicorn.run(
        "pixelseg.deploy.serve:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0
