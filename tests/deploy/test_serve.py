"""The HTTP API: every endpoint, every kind of bad request (4xx with a JSON error, never a 500),
the concurrency bound, and a schema-driven fuzz run."""

from __future__ import annotations

import base64
import io
import struct
import threading
import uuid
import zlib

import numpy as np
import pytest
import schemathesis  # the dev extra: a missing test dependency fails, it does not skip
from fastapi.testclient import TestClient
from PIL import Image

import pixelseg
from pixelseg.data.imageio import list_images, read_image
from pixelseg.deploy.predict import overlay
from pixelseg.deploy.serve.app import create_app
from pixelseg.deploy.serve.limits import ServeLimits


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def predictor(trained_run):
    return pixelseg.load(trained_run("unet"))


@pytest.fixture(scope="module")
def client(predictor):
    limits = ServeLimits(max_bytes=200_000, max_pixels=300 * 300)
    with TestClient(create_app(predictor, limits), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def scene_png(deploy_scenes) -> bytes:
    return list_images(deploy_scenes / "test" / "images")[0].read_bytes()


def post(client, data: bytes, name="x.png", ctype="image/png", query=""):
    return client.post(f"/predict{query}", files={"image": (name, data, ctype)})


def post_chunked(client, data: bytes, name="x.png"):
    """The same upload without a Content-Length (Transfer-Encoding: chunked)."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    ctype = f"multipart/form-data; boundary={boundary}"
    return client.post("/predict", content=chunks, headers={"content-type": ctype})


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds almost nothing: what a
    decompression bomb looks like to the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_predict_returns_counts_objects_and_pngs(client, predictor, scene_png):
    r = post(client, scene_png, query="?mask=true&overlay=true&uncertainty=true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (40, 32)
    assert sum(body["class_pixels"].values()) == 40 * 32
    assert abs(sum(body["class_share"].values()) - 1) < 1e-3
    assert isinstance(body["objects"], list)
    assert all({"class_name", "area", "bbox", "confidence"} <= set(o) for o in body["objects"])
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png"]))))
    image = np.asarray(Image.open(io.BytesIO(scene_png)).convert("RGB"))
    assert (mask == predictor.predict(image)).all()  # what predict would write
    for key in ("overlay_png", "uncertainty_png"):
        assert Image.open(io.BytesIO(base64.b64decode(body[key]))).size == (40, 32)
    plain = post(client, scene_png, query="?objects=false").json()
    assert plain["mask_png"] is None and plain["objects"] is None


def test_model_health_page_and_docs(client, predictor):
    info = client.get("/model").json()
    assert info["model"] == "unet" and info["classes"] == predictor.classes.names
    assert info["backend"] == "torch" and len(info["colours"]) == len(info["classes"])
    assert client.get("/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and 'id="drop"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # works offline
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    docs = client.get("/docs").text
    assert "cdn" not in docs.lower()
    assert all(client.get(a).status_code == 200 for a in _asset_urls(docs))


def _asset_urls(html: str) -> list[str]:
    import re

    return re.findall(r'(?:src|href)="(/[^"]+)"', html)


def _raw_exif_not_hex() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "\nexif\n      10\nzz not hex\n")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "case, status, words",
    [
        ("text", 400, "not a PNG, JPEG"),
        ("truncated", 400, "truncated"),
        ("empty", 400, "empty"),
        ("bytes", 413, "over the limit"),
        ("pixels", 413, "over the limit"),
        ("many-zeros", 413, "pixels"),
        ("bomb", 413, "too large to decode safely"),
        ("exif", 400, "damaged image metadata"),  # was a 500: Pillow's ValueError
        ("gif", 400, "not a PNG, JPEG"),  # a format pixelseg does not read, named .png
    ],
)
def test_bad_uploads_get_4xx_with_a_json_error(client, scene_png, case, status, words, chunked):
    big = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    data = {
        "text": b"this is not an image",
        "truncated": scene_png[: len(scene_png) // 2],
        "empty": b"",
        "bytes": png(big),  # ~480 kB of noise: over the 200 kB limit
        "pixels": png(np.zeros((301, 300, 3), np.uint8)),  # small file, too many pixels
        "many-zeros": png(np.zeros((8000, 8000), np.uint8)),  # 64 Mpx of zeros in a few kB
        # Past Pillow's own bomb limit (268 Mpx): refused while the header is opened, before
        # the server's pixel check (the path the cases above never reach).
        "bomb": png_header_only(30_000, 30_000),
        "exif": _raw_exif_not_hex(),
        "gif": _gif(),
    }[case]
    r = post_chunked(client, data) if chunked else post(client, data)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_wrong_requests_get_4xx(client, scene_png):
    r = client.post("/predict", json={"image": "x"})
    assert r.status_code == 415 and "multipart" in r.json()["error"]
    r = client.post("/predict", content=scene_png, headers={"content-type": "image/png"})
    assert r.status_code == 415
    r = client.post("/predict", files={"other": ("x.png", scene_png, "image/png")})
    assert r.status_code == 422 and "image" in r.json()["error"]
    r = post(client, scene_png, query="?min_area=0")
    assert r.status_code == 422 and "min_area" in r.json()["error"]
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json()
    assert client.get("/predict").status_code == 405
    r = client.post("/predict", content=b"x" * 300_000, headers={"content-type": "multipart/x"})
    assert r.status_code == 413


def test_requests_over_the_bound_get_503_and_the_server_lives(predictor, scene_png):
    limits = ServeLimits(max_active=1, max_waiting=0, wait_seconds=5)
    app = create_app(predictor, limits)
    gate, entered = threading.Event(), threading.Event()
    original = predictor.predict_proba_batch

    def slow(images, *a, **k):
        entered.set()
        gate.wait(10)
        return original(images, *a, **k)

    predictor.predict_proba_batch = slow
    try:
        with TestClient(app) as c:
            first: dict = {}
            t = threading.Thread(target=lambda: first.update(r=post(c, scene_png)))
            t.start()
            assert entered.wait(10)
            busy = post(c, scene_png)
            assert busy.status_code == 503 and "busy" in busy.json()["error"]
            gate.set()
            t.join(10)
            assert first["r"].status_code == 200
            assert post(c, scene_png).status_code == 200  # alive and admitting again
    finally:
        predictor.predict_proba_batch = original
        gate.set()


def test_concurrent_requests_are_batched_and_answered_correctly(predictor, deploy_scenes):
    """Each answer is its own image's: the mask predict makes of it, and the overlay of that
    image (the images differ, so answers swapped between requests would not match)."""
    app = create_app(predictor, ServeLimits(batch_wait_ms=50))
    calls = []
    original = predictor.predict_proba_batch
    predictor.predict_proba_batch = lambda images, *a, **k: (
        calls.append(len(images)) or original(images, *a, **k)
    )
    paths = list_images(deploy_scenes / "test" / "images")
    images = {p: read_image(p) for p in paths}
    assert len({im.tobytes() for im in images.values()}) == len(paths)  # all different
    try:
        with TestClient(app) as c:
            results: dict = {}
            threads = [
                threading.Thread(
                    target=lambda p=p: results.update(
                        {p: post(c, p.read_bytes(), query="?mask=true&overlay=true")}
                    )
                )
                for p in paths
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    finally:
        predictor.predict_proba_batch = original
    assert max(calls) > 1 and sum(calls) == len(paths)
    assert set(results) == set(paths)
    for p, r in results.items():
        assert r.status_code == 200, r.text
        body = r.json()
        expect = predictor.predict(images[p])
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png"]))))
        assert (mask == expect).all(), p.name
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["overlay_png"]))))
        assert (shown == overlay(images[p], expect, predictor.classes.colours)).all(), p.name
        counts = np.bincount(expect.ravel(), minlength=predictor.num_classes)
        names = predictor.classes.names
        assert body["class_pixels"] == {names[k]: int(n) for k, n in enumerate(counts) if n}


def test_schema_driven_fuzzing_finds_no_server_errors(predictor):
    from hypothesis import HealthCheck, given, settings

    app = create_app(predictor, ServeLimits(max_bytes=100_000, max_pixels=100_000))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case):
            response = case.call()
            statuses.append(response.status_code)
            assert response.status_code < 500, (case.path, response.text[:200])

        run()
    assert statuses and max(statuses) < 500


def test_worker_processes_build_the_app_from_the_environment(trained_run, monkeypatch):
    """`pixelseg serve --workers N` hands the model and limits to each worker this way."""
    from pixelseg.deploy.serve import app_from_env

    monkeypatch.setenv("PIXELSEG_SERVE_MODEL", str(trained_run("unet")))
    monkeypatch.setenv("PIXELSEG_SERVE_MAX_BYTES", "1000")
    monkeypatch.setenv("PIXELSEG_SERVE_WAIT_SECONDS", "2.5")
    with TestClient(app_from_env()) as c:
        assert c.get("/model").json()["model"] == "unet"
        r = c.post("/predict", files={"image": ("x.png", b"x" * 5000, "image/png")})
        assert r.status_code == 413 and "1,000 bytes" in r.json()["error"]
