"""The application ``pixelseg serve`` runs (started by deploy/serve.py): an HTTP API (FastAPI,
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

Requests arriving together are batched for the forward pass (``MicroBatcher``): under load the
model runs the same batches as offline prediction. Large images go through the model at a
bounded size and their outputs are made a band at a time (``serve_work``). Decoding, the class
map, the encodings and the JSON run in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import queue
import threading
import time
from concurrent.futures import Future
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.imageio import ImageTooLargeError, decode_image_bytes
from ..errors import PixelsegError
from .predict import Predictor
from .serve_limits import ServeLimits
from .serve_work import (
    Asked,
    Deadline,
    DeadlineExceeded,
    describe,
    estimate_bytes,
    model_input,
    model_size,
)


class BatcherStopped(Exception):
    """The model thread has stopped: no request can be answered until a restart."""


class MicroBatcher:
    """One thread runs the model; requests hand it images and wait for their probabilities.
    It takes what is queued (up to ``batch_size`` images of one size, ``max_pixels`` in all)
    as one batch. A request that gave up before its turn is skipped; when a batch fails,
    its images are tried one by one, so that one bad image fails alone."""

    def __init__(
        self, predictor: Predictor, batch_size: int, wait_ms: float, max_pixels: int = 0
    ) -> None:
        self.predictor = predictor
        self.batch_size = max(1, batch_size)
        self.wait = wait_ms / 1000
        self.max_pixels = max_pixels
        self.jobs: queue.Queue = queue.Queue()
        self.failure: BaseException | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True, name="pixelseg-batcher")
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.failure is None and self.thread.is_alive()

    def submit(self, image: np.ndarray) -> Future:
        future: Future = Future()
        with self.lock:
            if not self.alive:
                raise BatcherStopped(repr(self.failure))
            self.jobs.put((image, future))
        return future

    def _take(self, timeout: float | None = None):
        """The next job whose request still waits (None when the queue stays empty)."""
        while True:
            image, future = self.jobs.get(timeout=timeout)
            if future.set_running_or_notify_cancel():  # False: cancelled, its client is gone
                return image, future

    def _run(self) -> None:
        batch: list = []
        held = None
        try:
            while True:
                batch = [held] if held else [self._take()]
                held = None
                pixels = batch[0][0].shape[0] * batch[0][0].shape[1]
                deadline = time.monotonic() + self.wait
                while len(batch) < self.batch_size:
                    try:
                        job = self._take(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    pixels += job[0].shape[0] * job[0].shape[1]
                    if job[0].shape != batch[0][0].shape or (
                        self.max_pixels and pixels > self.max_pixels
                    ):
                        held = job  # another size, or over the pixels of one pass: next batch
                        break
                    batch.append(job)
                self._run_batch(batch)
                batch = []
        except BaseException as e:  # the thread ends: say so to every request, and to /health
            with self.lock:
                self.failure = e
                batch += [held] if held else []
                while not self.jobs.empty():
                    job = self.jobs.get_nowait()
                    if job[1].set_running_or_notify_cancel():
                        batch.append(job)
            for _, future in batch:
                if not future.done():
                    future.set_exception(BatcherStopped(repr(e)))
            # Not re-raised: the failure is kept, and /health and every request report it.

    def _run_batch(self, batch: list) -> None:
        try:
            probs = self.predictor.predict_proba_batch([image for image, _ in batch])
        except Exception as e:  # a model failure fails its requests, not the server
            if len(batch) > 1:  # which one? each alone
                for job in batch:
                    self._run_batch([job])
            else:
                batch[0][1].set_exception(e)
            return
        for (_, future), p in zip(batch, probs):
            future.set_result(p)


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


class MemoryBudget:
    """The estimated bytes of the requests being processed stay under ``total``: a request
    that cannot fit alone is refused, the others wait for room."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self.room: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def reserve(self, n: int, timeout: float):
        if self.room is None:  # created inside the server's event loop
            self.room = asyncio.Condition()
        async with self.room:
            await asyncio.wait_for(self.room.wait_for(lambda: self.used + n <= self.total), timeout)
            self.used += n
        try:
            yield
        finally:
            async with self.room:
                self.used -= n
                self.room.notify_all()


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
        408: "the upload did not arrive in time",
        413: "over the byte, pixel or memory limit",
        415: "not a multipart upload",
        422: "a bad parameter",
        503: "busy: retry later (or the model thread has stopped)",
        504: "not answered within the compute deadline",
    }.items()
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class UploadGate:
    """ASGI middleware in front of ``POST /predict``: a body declared over ``max_bytes`` is
    refused at once (413); then the request takes its place (``Admission``: 503 when the
    server is busy) *before* its body is read, and the body is read here, against the byte
    limit as it streams in (413, with or without a Content-Length) and the upload deadline
    (408), and handed on whole. The compute deadline starts when the body has arrived."""

    def __init__(self, app, limits: ServeLimits, admission: Admission) -> None:
        self.app, self.limits, self.admission = app, limits, admission
        # The multipart framing around the file takes a few hundred bytes more than the file.
        self.max_bytes = limits.max_bytes + 64 * 1024

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, receive, send, 413, self._over())
        if scope["method"] != "POST" or scope["path"] != "/predict":
            return await self.app(scope, receive, send)
        try:
            async with self.admission:
                body = await self._read(receive)
                scope.setdefault("state", {})["deadline"] = Deadline(self.limits.compute_seconds)
                sent = False

                async def replay():
                    nonlocal sent
                    if sent:
                        return await receive()
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.app(scope, replay, send)
        except ApiError as e:
            await self._refuse(scope, receive, send, e.status, e.message)
        except _ClientGone:
            pass

    def _over(self) -> str:
        return f"upload over the limit of {self.limits.max_bytes:,} bytes (--max-bytes)"

    async def _read(self, receive) -> bytes:
        chunks, seen = [], 0
        end = time.monotonic() + self.limits.upload_seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, end - time.monotonic()))
            except asyncio.TimeoutError:
                raise ApiError(
                    408,
                    f"the upload did not arrive within {self.limits.upload_seconds:g} s "
                    "(--upload-seconds)",
                ) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                raise ApiError(413, self._over())
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _refuse(scope, receive, send, status: int, message: str) -> None:
        # The rest of the body is not read: the server closes the connection after this.
        await _error(status, message)(scope, receive, send)


class _ClientGone(Exception):
    pass


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

    @app.exception_handler(DeadlineExceeded)
    async def _deadline(request: Request, exc: DeadlineExceeded):
        return _error(
            504,
            f"not answered within the compute deadline of {limits.compute_seconds:g} s "
            "(--compute-seconds); retry later, or with a smaller image or fewer outputs",
        )

    @app.exception_handler(BatcherStopped)
    async def _stopped(request: Request, exc: BatcherStopped):
        return _error(503, f"the model thread has stopped ({exc}); the server needs a restart")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug: say so, stay up
        return _error(500, f"internal error ({type(exc).__name__})")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health():
        if not batcher.alive:
            return _error(
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
