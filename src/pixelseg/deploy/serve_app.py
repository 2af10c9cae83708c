"""The application ``pixelseg serve`` runs (started by deploy/serve.py): an HTTP API (FastAPI,
OpenAPI docs at /docs) and a web page for a model.

Endpoints: ``POST /predict`` (multipart upload, field ``image``) -> image size, per-class pixel
counts and shares, objects, and on request the mask, overlay and uncertainty PNGs (base64);
``GET /model``; ``GET /health``; ``GET /`` (the page, no external assets).

Bad requests get a 4xx with ``{"error": "..."}``: an empty or non-image upload or a truncated
image 400; over the byte or pixel limit (or a decompression bomb) 413; not multipart 415; a bad
parameter 422. The server never holds more than ``max_active + max_waiting`` requests: the
rest get 503 at once, and a request that waits longer than ``wait_seconds`` gets 503 too.

Requests arriving together are batched for the forward pass (``MicroBatcher``): under load the
model runs the same batches as offline prediction, while decoding and encoding run in the
request threads beside it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import threading
import time
from concurrent.futures import Future
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.imageio import ImageTooLargeError, decode_image_bytes
from ..errors import PixelsegError
from .outputs import ImagePrediction
from .predict import Predictor
from .serve_limits import ServeLimits


class MicroBatcher:
    """One thread runs the model; requests hand it images and wait for their probabilities.
    It takes what is queued (up to ``batch_size`` images of one size) as one batch."""

    def __init__(self, predictor: Predictor, batch_size: int, wait_ms: float) -> None:
        self.predictor = predictor
        self.batch_size = max(1, batch_size)
        self.wait = wait_ms / 1000
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True, name="pixelseg-batcher")
        self.thread.start()

    def submit(self, image: np.ndarray) -> Future:
        future: Future = Future()
        self.jobs.put((image, future))
        return future

    def _run(self) -> None:
        held = None
        while True:
            batch = [held] if held else [self.jobs.get()]
            held = None
            deadline = time.monotonic() + self.wait
            while len(batch) < self.batch_size:
                try:
                    job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job[0].shape != batch[0][0].shape:
                    held = job  # another size: the next batch
                    break
                batch.append(job)
            try:
                probs = self.predictor.predict_proba_batch([image for image, _ in batch])
                for (_, future), p in zip(batch, probs):
                    future.set_result(p)
            except Exception as e:  # a model failure fails its requests, not the server
                for _, future in batch:
                    future.set_exception(e)


class Admission:
    """At most ``max_active`` requests inside, ``max_waiting`` in line; the rest are refused."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.inside = 0
        self.semaphore: asyncio.Semaphore | None = None

    async def __aenter__(self) -> None:
        if self.semaphore is None:  # created inside the server's event loop
            self.semaphore = asyncio.Semaphore(self.limits.max_active)
        if self.inside >= self.limits.max_active + self.limits.max_waiting:
            raise ApiError(503, "server busy: too many requests waiting; retry later")
        self.inside += 1
        try:
            await asyncio.wait_for(self.semaphore.acquire(), self.limits.wait_seconds)
        except asyncio.TimeoutError:
            self.inside -= 1
            raise ApiError(
                503, f"server busy: waited {self.limits.wait_seconds:.0f} s; retry later"
            ) from None
        except BaseException:  # the client went away while waiting: its place is free again
            self.inside -= 1
            raise

    async def __aexit__(self, *exc) -> None:
        self.semaphore.release()
        self.inside -= 1


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ObjectInfo(BaseModel):
    id: int
    class_id: int
    class_name: str
    area: int
    bbox: list[int]
    centroid: list[float]
    confidence: float | None


class Prediction(BaseModel):
    width: int
    height: int
    class_pixels: dict[str, int]
    class_share: dict[str, float]
    objects: list[ObjectInfo] | None = None
    mask_png: str | None = None  # base64 palette PNG of class ids
    overlay_png: str | None = None  # base64 RGB PNG
    uncertainty_png: str | None = None  # base64 RGB PNG (entropy, magma colour map)
    seconds: float


class ModelInfo(BaseModel):
    model: str
    knobs: dict
    classes: list[str]
    colours: list[list[int]]
    input_size: list[int] | None  # the size images are resized to, if any (H, W)
    backend: str  # "torch" or "onnxruntime"
    source: str


class ErrorBody(BaseModel):
    error: str


ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "not an image, empty or truncated",
        413: "over the byte or pixel limit",
        415: "not a multipart upload",
        422: "a bad parameter",
        503: "busy: retry later",
    }.items()
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse a body over ``max_bytes`` with 413 before it is parsed (from its
    Content-Length, or while it streams in when there is none)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        message = f"upload over the limit of {self.max_bytes:,} bytes"
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _error(413, message)(scope, receive, send)
        seen, started = 0, False

        async def counting_receive():
            nonlocal seen
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return event

        async def tracking_send(event):
            nonlocal started
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _error(413, message)(scope, receive, send)


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
    # The multipart framing around the file takes a few hundred bytes more than the file.
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes + 64 * 1024)
    batcher = MicroBatcher(predictor, limits.batch_size, limits.batch_wait_ms)
    admission = Admission(limits)
    classes = predictor.classes
    page = resources.files("pixelseg.deploy").joinpath("web/index.html").read_text()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        content_type = request.headers.get("content-type", "")
        if request.url.path == "/predict" and not content_type.startswith("multipart/form-data"):
            return _error(
                415,
                f"expected a multipart/form-data upload with an 'image' file field, got "
                f"{content_type or 'no content type'}",
            )
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error(422, problems or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug: say so, stay up
        return _error(500, f"internal error ({type(exc).__name__})")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "active": admission.inside}

    @app.get("/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        spec = predictor.meta["model"]
        return ModelInfo(
            model=spec["name"],
            knobs=spec.get("knobs", {}),
            classes=list(classes.names),
            colours=[list(c) for c in classes.colours],
            input_size=list(predictor.resize) if predictor.resize else None,
            backend="onnxruntime" if predictor.source.endswith(".onnx") else "torch",
            source=os.path.basename(predictor.source.rstrip("/")),
        )

    @app.post("/predict", response_model=Prediction, responses=ERRORS)
    async def predict(
        image: Annotated[UploadFile, File(description="the image: PNG, JPEG, BMP, TIFF, WebP")],
        mask: Annotated[bool, Query(description="include the class-id mask PNG")] = False,
        overlay: Annotated[bool, Query(description="include the colour overlay PNG")] = False,
        uncertainty: Annotated[bool, Query(description="include the uncertainty PNG")] = False,
        objects: Annotated[bool, Query(description="list every class's objects")] = True,
        min_area: Annotated[int, Query(ge=1, le=10**9, description="smallest object")] = 16,
    ) -> Prediction:
        t0 = time.perf_counter()
        async with admission:
            data = await image.read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                raise ApiError(413, f"upload over the limit of {limits.max_bytes:,} bytes")
            name = image.filename or "upload"
            try:
                array = await run_in_threadpool(decode_image_bytes, data, name, limits.max_pixels)
            except ImageTooLargeError as e:
                raise ApiError(413, str(e)) from None
            except PixelsegError as e:
                raise ApiError(400, str(e)) from None
            probs = await asyncio.wrap_future(batcher.submit(array))
            pred = ImagePrediction(array, probs, classes, min_area)
            return await run_in_threadpool(_describe, pred, mask, overlay, uncertainty, objects, t0)

    return app


def _describe(
    pred: ImagePrediction, mask: bool, overlay: bool, uncertainty: bool, objects: bool, t0: float
) -> Prediction:
    h, w = pred.class_map.shape
    counts = pred.class_pixels()
    return Prediction(
        width=w,
        height=h,
        class_pixels=counts,
        class_share={k: round(v / (h * w), 6) for k, v in counts.items()},
        objects=pred.objects() if objects else None,
        mask_png=_b64(pred.mask_png()) if mask else None,
        overlay_png=_b64(pred.overlay_png()) if overlay else None,
        uncertainty_png=_b64(pred.uncertainty_png()) if uncertainty else None,
        seconds=round(time.perf_counter() - t0, 4),
    )
