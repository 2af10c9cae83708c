"""The application ``pixelseg serve`` runs (started by ``server.py``): an HTTP API (FastAPI,
OpenAPI docs at /docs) and a web page for a model.

Endpoints: ``POST /predict`` (multipart upload, field ``image``) -> image size, per-class pixel
counts and shares, objects, and on request the mask, overlay and uncertainty PNGs (base64);
``GET /model``; ``GET /health``; ``GET /`` (the page, no external assets).

Bad requests get a 4xx with ``{"error": "..."}``: an empty or non-image upload or a truncated
image 400; an upload that does not arrive within ``upload_seconds`` 408; over the byte or pixel
limit (or a decompression bomb), or needing more memory than ``max_memory_mb`` 413; not
multipart 415; a bad parameter 422. A request takes its place before its upload is read: the
server never holds more than ``max_active + max_waiting`` requests, the rest get 503 at once,
and a request that waits longer than ``wait_seconds`` gets 503 too. One not answered within
``compute_seconds`` of its upload gets 504. ``/health`` is 503 when the model thread has
stopped.

The limits are enforced in ``admission.py``; the answers' shapes are ``schemas.py``. Requests
arriving together are batched for the forward pass (``batcher.MicroBatcher``): under load the
model runs the same batches as offline prediction. Large images go through the model at a
bounded size and their outputs are made a band at a time (``work.py``). Decoding, the class
map, the encodings and the JSON run in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import io
import time
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...data.imageio import ImageTooLargeError, decode_image_bytes
from ...errors import PixelsegError
from ..predict import Predictor
from .admission import Admission, MemoryBudget, UploadGate
from .batcher import BatcherStopped, MicroBatcher
from .limits import ServeLimits
from .schemas import ERRORS, ApiError, ModelInfo, Prediction, error_response
from .work import (
    Asked,
    Deadline,
    DeadlineExceeded,
    describe,
    estimate_bytes,
    model_input,
    model_size,
)


def create_app(predictor: Predictor, limits: ServeLimits | None = None) -> FastAPI:
    """The FastAPI application for one loaded model.

    >>> app = create_app(pixelseg.load("runs/demo"))   # doctest: +SKIP
    >>> uvicorn.run(app, port=8000)                     # doctest: +SKIP
    """
    limits = limits or ServeLimits()
    try:  # Swagger UI's files from the package, so /docs works offline too
        from fastapi_offline import FastAPIOffline as App
    except ImportError:  # pragma: no cover (the serve extra installs it)
        App = FastAPI
    app = App(
        title="pixelseg",
        description="Semantic segmentation of uploaded images. The web page is at /.",
        version="1",
    )
    admission = Admission(limits)
    app.add_middleware(UploadGate, limits=limits, admission=admission)
    batcher = MicroBatcher(
        predictor, limits.batch_size, limits.batch_wait_ms, limits.max_model_pixels
    )
    budget = MemoryBudget(limits.max_memory_mb * 2**20)
    classes = predictor.classes
    page = resources.files("pixelseg.deploy").joinpath("web/index.html").read_text()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        content_type = request.headers.get("content-type", "")
        if request.url.path == "/predict" and not content_type.startswith("multipart/form-data"):
            return error_response(
                415,
                f"expected a multipart/form-data upload with an 'image' file field, got "
                f"{content_type or 'no content type'}",
            )
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error_response(422, problems or "invalid request")

    @app.exception_handler(DeadlineExceeded)
    async def _deadline(request: Request, exc: DeadlineExceeded):
        return error_response(
            504,
            f"not answered within the compute deadline of {limits.compute_seconds:g} s "
            "(--compute-seconds); retry later, or with a smaller image or fewer outputs",
        )

    @app.exception_handler(BatcherStopped)
    async def _stopped(request: Request, exc: BatcherStopped):
        return error_response(
            503, f"the model thread has stopped ({exc}); the server needs a restart"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug: say so, stay up
        return error_response(500, f"internal error ({type(exc).__name__})")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health():
        if not batcher.alive:
            return error_response(
                503, f"the model thread has stopped ({batcher.failure!r}); restart the server"
            )
        return {"status": "ok", "active": admission.inside}

    @app.get("/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        spec, info = predictor.meta["model"], predictor.info()
        return ModelInfo(
            model=spec["name"],
            knobs=spec.get("knobs", {}),
            classes=list(classes.names),
            colours=[list(c) for c in classes.colours],
            input_size=list(info.input_size) if info.input_size else None,
            backend=info.runtime,
            source=info.source,
        )

    @app.post("/predict", response_model=Prediction, responses=ERRORS)
    async def predict(
        request: Request,
        image: Annotated[UploadFile, File(description="the image: PNG, JPEG, BMP, TIFF, WebP")],
        mask: Annotated[bool, Query(description="include the class-id mask PNG")] = False,
        overlay: Annotated[bool, Query(description="include the colour overlay PNG")] = False,
        uncertainty: Annotated[bool, Query(description="include the uncertainty PNG")] = False,
        objects: Annotated[bool, Query(description="list every class's objects")] = True,
        min_area: Annotated[int, Query(ge=1, le=10**9, description="smallest object")] = 16,
    ):
        # Admitted, with the body read, by UploadGate; everything heavy runs in threads.
        t0 = time.perf_counter()
        deadline = getattr(request.state, "deadline", None) or Deadline(limits.compute_seconds)
        asked = Asked(mask, overlay, uncertainty, objects, min_area)
        data = await image.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            raise ApiError(413, f"upload over the limit of {limits.max_bytes:,} bytes")
        name = image.filename or "upload"
        size = await run_in_threadpool(_header_size, data)
        if size is None or size[0] * size[1] > limits.max_pixels:
            array = await _decode(data, name)  # the error it raises says what is wrong
            size = array.shape[1], array.shape[0]
        w, h = size
        work = model_size(h, w, predictor.resize, limits.max_model_pixels)
        cost = estimate_bytes(h, w, classes.num_classes, work, asked)
        if cost > budget.total:
            raise ApiError(
                413,
                f"{name}: {w}x{h} with {_outputs(asked)} needs about {cost / 2**20:,.0f} MB, "
                f"over the memory limit of {limits.max_memory_mb:,} MB (--max-memory-mb); "
                "send a smaller image or ask for fewer outputs",
            )
        try:
            async with budget.reserve(cost, deadline.remaining()):
                array = await _decode(data, name)
                del data
                x = (
                    array
                    if array.shape[:2] == work
                    else await run_in_threadpool(model_input, array, work)
                )
                probs = await asyncio.wait_for(
                    asyncio.wrap_future(batcher.submit(x)), deadline.remaining()
                )
                del x
                body = await run_in_threadpool(_answer, array, probs, classes, asked, deadline, t0)
        except asyncio.TimeoutError:
            raise DeadlineExceeded from None
        return Response(body, media_type="application/json")

    async def _decode(data: bytes, name: str) -> np.ndarray:
        try:
            return await run_in_threadpool(decode_image_bytes, data, name, limits.max_pixels)
        except ImageTooLargeError as e:
            raise ApiError(413, str(e)) from None
        except PixelsegError as e:
            raise ApiError(400, str(e)) from None

    return app


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header, None when it cannot be read: decoding it will
    say why."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # unreadable, truncated, or a decompression bomb
        return None


def _outputs(asked: Asked) -> str:
    names = [n for n in ("mask", "overlay", "uncertainty", "objects") if getattr(asked, n)]
    return ", ".join(names) if names else "no outputs"


def _answer(
    image: np.ndarray,
    probs: np.ndarray,
    classes,
    asked: Asked,
    deadline: Deadline,
    t0: float,
) -> bytes:
    """The JSON body of one answer (made here, in a thread, not on the event loop)."""
    fields = describe(image, probs, classes, asked, deadline)
    return Prediction(**fields, seconds=round(time.perf_counter() - t0, 4)).model_dump_json()
