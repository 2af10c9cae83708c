"""``pixelseg serve``: load a model and run the HTTP server on it, in one process or several.

The application itself (endpoints, limits, micro-batching) is ``app.py``; this module (and
the package's ``__init__``) imports neither FastAPI nor uvicorn until a server starts, so
``import pixelseg`` works without the serve extra.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import PixelsegError
from ..predict import load
from .limits import ServeLimits

if TYPE_CHECKING:
    from fastapi import FastAPI

# The factory each worker process calls when there are several (uvicorn imports it by name,
# from the package, which re-exports it).
WORKER_FACTORY = "pixelseg.deploy.serve:app_from_env"


def serve(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    limits: ServeLimits | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Serve ``model`` (a run folder, a checkpoint .json or an exported .onnx file) over HTTP
    until the server is stopped: ``POST /predict``, ``GET /model``, ``/health``, ``/docs`` and
    a web page at ``/``. With ``workers > 1`` each worker process loads the model itself.

    >>> pixelseg.serve("runs/demo", port=8000)                               # doctest: +SKIP
    >>> pixelseg.serve("model.onnx", workers=2, limits=ServeLimits(max_active=8))  # doctest: +SKIP
    """
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise PixelsegError(
            f'serve needs the serve extra ({e.name} is missing): pip install "pixelseg[serve]"'
        ) from None
    if workers < 1:
        raise PixelsegError("--workers must be at least 1")
    limits = limits or ServeLimits()
    log(f"pixelseg serve: http://{host}:{port}/ (API docs at /docs)")
    # Connections past max_connections get 503 from uvicorn itself; idle keep-alive ones close.
    # A slow upload is bounded by the app (upload_seconds), after admission.
    config = dict(
        host=host,
        port=port,
        log_level="warning",
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_seconds,
    )
    if workers == 1:
        uvicorn.run(create_app(load(model), limits), **config)
        return
    load(model)  # fail here, in one line, rather than in every worker
    os.environ.update(worker_environment(model, limits))
    uvicorn.run(WORKER_FACTORY, factory=True, workers=workers, **config)


def worker_environment(model: str | Path, limits: ServeLimits) -> dict[str, str]:
    """The variables that hand the model and the limits to each worker (``app_from_env``)."""
    env = {"PIXELSEG_SERVE_MODEL": str(model)}
    for f in fields(ServeLimits):
        env[f"PIXELSEG_SERVE_{f.name.upper()}"] = str(getattr(limits, f.name))
    return env


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` with several worker processes: each loads the model named in
    ``PIXELSEG_SERVE_MODEL`` (and the limits in ``PIXELSEG_SERVE_*``)."""
    from .app import create_app

    limits = ServeLimits(
        **{
            f.name: type(getattr(ServeLimits, f.name))(
                os.environ[f"PIXELSEG_SERVE_{f.name.upper()}"]
            )
            for f in fields(ServeLimits)
            if f"PIXELSEG_SERVE_{f.name.upper()}" in os.environ
        }
    )
    return create_app(load(os.environ["PIXELSEG_SERVE_MODEL"]), limits)
