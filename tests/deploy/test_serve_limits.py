"""Hostile requests against the server (issue 30): memory bounded by what a request costs, a
compute deadline, admission before the upload is read, 413 for a chunked upload over the limit,
a micro-batcher that survives cancelled and failing requests, and an event loop that stays free.
Each test names the case it guards; each failed on the server before that issue."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
import tracemalloc
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import pixelseg
from pixelseg.deploy.serve.app import create_app
from pixelseg.deploy.serve.batcher import MicroBatcher
from pixelseg.deploy.serve.limits import ServeLimits

from .live_server import live_server

EVERYTHING = "?mask=true&overlay=true&uncertainty=true&objects=true"


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def multipart(data: bytes, name: str = "x.png") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.fixture(scope="module")
def predictor(trained_run):
    return pixelseg.load(trained_run("unet"))


@pytest.fixture(scope="module")
def scene(deploy_scenes) -> bytes:
    return sorted((deploy_scenes / "test" / "images").iterdir())[0].read_bytes()


@pytest.fixture
def held(predictor):
    """The model blocks until ``gate`` is set; ``entered`` says it has a batch."""
    gate, entered = threading.Event(), threading.Event()
    original = predictor.predict_proba_batch

    def slow(images, *a, **k):
        entered.set()
        gate.wait(30)
        return original(images, *a, **k)

    predictor.predict_proba_batch = slow
    yield gate, entered
    gate.set()
    predictor.predict_proba_batch = original


# -- memory: the work is bounded by what the request costs -------------------------------------


def test_a_large_image_goes_through_the_model_at_a_bounded_size(predictor):
    """A flat 3000x2000 PNG is a few kB: the model must not run at 6 Mpx, yet every output comes
    back at the image's own size."""
    limits = ServeLimits(max_model_pixels=200_000, max_pixels=10_000_000)
    seen = []
    original = predictor.predict_proba_batch
    predictor.predict_proba_batch = lambda images, *a, **k: (
        seen.extend(im.shape[:2] for im in images) or original(images, *a, **k)
    )
    try:
        with TestClient(create_app(predictor, limits)) as c:
            data = png(np.full((2000, 3000, 3), 90, np.uint8))
            r = c.post(f"/predict{EVERYTHING}", files={"image": ("flat.png", data, "image/png")})
    finally:
        predictor.predict_proba_batch = original
    assert r.status_code == 200, r.text
    assert seen and all(h * w <= 200_000 for h, w in seen), seen
    body = r.json()
    assert (body["width"], body["height"]) == (3000, 2000)
    for key in ("mask_png", "overlay_png", "uncertainty_png"):
        assert decode_png(body[key]).shape[:2] == (2000, 3000)
    assert sum(body["class_pixels"].values()) == 3000 * 2000


def test_a_large_request_allocates_a_few_bytes_per_pixel_not_copies_per_class(predictor):
    """Before: full-size probabilities per class, then float64 copies of them for the entropy
    (hundreds of bytes per pixel with every output asked for)."""
    limits = ServeLimits(max_pixels=10_000_000)
    data = png(np.full((1500, 2000, 3), 200, np.uint8))
    with TestClient(create_app(predictor, limits)) as c:
        tracemalloc.start()
        try:
            r = c.post(f"/predict{EVERYTHING}", files={"image": ("flat.png", data, "image/png")})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert r.status_code == 200, r.text
    assert peak / (1500 * 2000) < 40, f"{peak / 1e6:.0f} MB at the peak"


def test_a_request_that_cannot_fit_the_memory_limit_gets_413_naming_it(predictor):
    limits = ServeLimits(max_memory_mb=64, max_model_pixels=100_000, max_pixels=10_000_000)
    data = png(np.zeros((1500, 1500, 3), np.uint8))
    with TestClient(create_app(predictor, limits)) as c:
        r = c.post(f"/predict{EVERYTHING}", files={"image": ("x.png", data, "image/png")})
        assert r.status_code == 413, r.text
        assert "max-memory-mb" in r.json()["error"] and "64 MB" in r.json()["error"]
        # the same image asking for less fits
        r = c.post("/predict?objects=false", files={"image": ("x.png", data, "image/png")})
        assert r.status_code == 200, r.text


def test_a_request_over_the_compute_deadline_gets_504(predictor, scene, held):
    gate, _ = held
    limits = ServeLimits(compute_seconds=1.0)
    with TestClient(create_app(predictor, limits)) as c:
        answer: dict = {}
        t = threading.Thread(
            target=lambda: answer.update(r=c.post("/predict", files={"image": ("x.png", scene)}))
        )
        t0 = time.monotonic()
        t.start()
        t.join(15)
        assert "r" in answer, "no answer: the request waits for the model for ever"
        assert answer["r"].status_code == 504 and "compute-seconds" in answer["r"].json()["error"]
        assert time.monotonic() - t0 < 10
        gate.set()
        assert c.post("/predict", files={"image": ("x.png", scene)}).status_code == 200


# -- admission and upload ----------------------------------------------------------------------


def _raw_request(url: str, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send ``head`` (and ``body``) on a raw socket; what the server answers within ``wait``."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(head + body)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break  # the JSON error body is complete
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def test_a_busy_server_answers_503_before_reading_the_upload(predictor, scene, held):
    """Before: FastAPI read (and spooled) the whole multipart body before admission ran."""
    gate, entered = held
    app = create_app(predictor, ServeLimits(max_active=1, max_waiting=0))
    with live_server(app) as url:
        first = threading.Thread(
            target=lambda: __import__("httpx").post(
                f"{url}/predict", files={"image": ("x.png", scene)}, timeout=30
            )
        )
        first.start()
        assert entered.wait(15)
        _, ctype = multipart(b"")
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        answer = _raw_request(url, head)  # no body at all: the server must not wait for one
        gate.set()
        first.join(30)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert b"busy" in answer


def test_an_upload_that_does_not_arrive_in_time_gets_408(predictor):
    app = create_app(predictor, ServeLimits(upload_seconds=1.0))
    with live_server(app) as url:
        _, ctype = multipart(b"")
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            "Content-Length: 5000\r\n\r\n"
        ).encode()
        t0 = time.monotonic()
        answer = _raw_request(url, head, b"x" * 100, wait=8)  # 100 of 5000 bytes, then nothing
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"upload-seconds" in answer and time.monotonic() - t0 < 6


def test_a_chunked_upload_over_the_byte_limit_gets_413(predictor):
    """No Content-Length: the limit is met while the body streams in. Before: 400."""
    body, ctype = multipart(b"\0" * 3_000_000)

    def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    with TestClient(create_app(predictor, ServeLimits(max_bytes=1_000_000))) as c:
        r = c.post("/predict", content=chunks(), headers={"content-type": ctype})
    assert r.status_code == 413, r.text
    assert "over the limit of 1,000,000 bytes" in r.json()["error"]


def test_the_server_runs_with_bounded_connections_and_timeouts(trained_run, monkeypatch):
    import uvicorn

    from pixelseg.deploy.serve import serve

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    serve(trained_run("unet"), limits=ServeLimits(max_connections=40), log=lambda _: None)
    assert seen["limit_concurrency"] == 40
    assert 0 < seen["timeout_keep_alive"] <= 30


# -- the micro-batcher -------------------------------------------------------------------------


def test_a_cancelled_waiting_request_does_not_stop_the_batcher(predictor, held):
    gate, entered = held
    batcher = MicroBatcher(predictor, batch_size=4, wait_ms=1)
    image = np.zeros((32, 40, 3), np.uint8)
    first = batcher.submit(image)
    assert entered.wait(10)
    gone = batcher.submit(image)
    gone.cancel()  # its client went away while it waited
    gate.set()
    assert first.result(10).shape[1:] == (32, 40)
    assert batcher.submit(image).result(10).shape[1:] == (32, 40)  # before: waited for ever


def test_one_failing_image_fails_alone(predictor, deploy_scenes):
    """Four requests batched together, one of which the model fails on: before, all four got
    500; now three get their answer."""
    images = sorted((deploy_scenes / "test" / "images").iterdir())[:4]
    poison = np.asarray(Image.open(images[0]).convert("RGB"))
    batches = []
    original = predictor.predict_proba_batch

    def fragile(batch, *a, **k):
        batches.append(len(batch))
        if any(np.array_equal(im, poison) for im in batch):
            raise RuntimeError("the model failed")
        return original(batch, *a, **k)

    predictor.predict_proba_batch = fragile
    try:
        app = create_app(predictor, ServeLimits(batch_wait_ms=300))
        with TestClient(app, raise_server_exceptions=False) as c:
            out: dict = {}
            threads = [
                threading.Thread(
                    target=lambda p=p: out.update(
                        {p: c.post("/predict", files={"image": (p.name, p.read_bytes())})}
                    )
                )
                for p in images
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert c.get("/health").status_code == 200
    finally:
        predictor.predict_proba_batch = original
    assert max(batches) > 1, "the requests were not batched: the test shows nothing"
    assert out[images[0]].status_code == 500
    assert "internal error" in out[images[0]].json()["error"]
    assert [out[p].status_code for p in images[1:]] == [200, 200, 200]


class _Fatal(BaseException):
    """What no ``except Exception`` catches: ends the batcher's thread."""


def test_a_dead_batcher_shows_in_health_and_requests_fail_fast(predictor, scene):
    original = predictor.predict_proba_batch

    def fatal(*a, **k):
        raise _Fatal

    predictor.predict_proba_batch = fatal
    try:
        app = create_app(predictor, ServeLimits(compute_seconds=60))
        with TestClient(app, raise_server_exceptions=False) as c:
            c.post("/predict", files={"image": ("x.png", scene)})
            health = c.get("/health")
            assert health.status_code == 503, health.text
            assert "model" in health.json()["error"]
            t0 = time.monotonic()
            r = c.post("/predict", files={"image": ("x.png", scene)})
            assert r.status_code == 503 and time.monotonic() - t0 < 5
    finally:
        predictor.predict_proba_batch = original


# -- the event loop stays free -----------------------------------------------------------------


def test_health_answers_quickly_while_a_large_request_is_processed(predictor):
    """Before: the argmax over the probabilities and the JSON of several-MB PNGs ran on the
    event loop, so /health waited for them."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (2400, 2400, 3), dtype=np.uint8)
    data = png(noise)
    limits = ServeLimits(max_bytes=len(data) + 1, max_pixels=6_000_000, max_memory_mb=4096)
    with TestClient(create_app(predictor, limits)) as c:
        c.get("/health")
        done = threading.Event()
        answer: dict = {}

        def large():
            answer["r"] = c.post(f"/predict{EVERYTHING}", files={"image": ("n.png", data)})
            done.set()

        t = threading.Thread(target=large)
        t.start()
        waits = []
        while not done.wait(0.02):
            t0 = time.perf_counter()
            assert c.get("/health").status_code in (200,)
            waits.append(time.perf_counter() - t0)
        t.join(60)
    assert answer["r"].status_code == 200, answer["r"].text
    assert len(waits) > 5
    assert max(waits) < 0.25, f"/health waited {max(waits):.2f} s"
