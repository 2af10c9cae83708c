"""Load test of `pixelseg serve`, against offline batch prediction of the same model and images
in the same run.

    python bench/serve_load.py [--data ../shared/datasets/camvid] [--model lightseg]
                               [--backend torch|onnx] [--requests 120]

Starts `pixelseg serve` on 127.0.0.1 (a free port), sends a bounded number of requests (the
val images in turn, each asking for the mask, overlay and uncertainty PNGs) at
concurrency 1, 4 and 16, and prints p50/p95/p99 latency, throughput and errors. The offline
figure is `predict_stream` over the same images with the same outputs (mask, overlay and
uncertainty PNGs), written to disk. Writes bench/results/serve_load.json. Run it alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from deploy_speed import SIZE, train_run  # noqa: E402

import pixelseg  # noqa: E402
from pixelseg.data.imageio import list_images  # noqa: E402
from pixelseg.data.scenes import write_scenes  # noqa: E402
from pixelseg.deploy.batch import predict_stream  # noqa: E402
from pixelseg.deploy.batch_listing import ListLayout  # noqa: E402
from pixelseg.deploy.batch_pipeline import PredictOptions  # noqa: E402
from pixelseg.deploy.onnx_export import export_onnx  # noqa: E402

# The same outputs as offline predict writes: mask, overlay and uncertainty PNGs (objects, which
# offline writes only with --instances, and then with an extra instance overlay, are left out
# on both sides so that the two do the same work).
QUERY = "/predict?mask=true&overlay=true&uncertainty=true&objects=false"


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def load_test(port: int, bodies: list[tuple[bytes, str]], concurrency: int, n: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(n))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body, boundary = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    QUERY,
                    body=body,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                )
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200:
                    errors.append(f"{response.status}: {payload[:100]!r}")
            except OSError as e:
                errors.append(repr(e))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": len(errors),
        "first_errors": errors[:3],
        "throughput_img_s": n / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--model", default="lightseg")
    ap.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    ap.add_argument("--requests", type=int, default=120, help="per concurrency level")
    ap.add_argument("--images", type=int, default=40, help="distinct val images used")
    ap.add_argument("--out", default="bench/results/serve_load.json")
    args = ap.parse_args()
    results: dict = {"model": args.model, "backend": args.backend, "levels": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data)
        if (data / "val").is_dir():
            paths = list_images(data / "val")[: args.images]
        else:
            print(f"{data} not found: using generated 360x480 scenes")
            data = tmp / "scenes"
            write_scenes(data, {"train": 4, "val": args.images}, size=SIZE, progress=False)
            paths = list_images(data / "val" / "images")
        model = train_run(data, args.model, tmp / "runs")
        if args.backend == "onnx":
            model = export_onnx(model, tmp / "model.onnx", size=SIZE).path

        predictor = pixelseg.load(model)
        options = PredictOptions(instances=True)
        locate = ListLayout("/").locate  # absolute paths, mirrored whole under the output
        warm = [str(p) for p in paths[:4]]
        predict_stream(predictor, warm, tmp / "warm", options, locate=locate, progress=False)
        offline = predict_stream(
            predictor,
            [str(p) for p in paths],
            tmp / "offline",
            options,
            locate=locate,
            progress=False,
        )
        results["offline_img_s"] = offline.images_per_second
        print(f"offline predict: {offline.images_per_second:.2f} img/s over {len(paths)} images")
        del predictor

        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "pixelseg", "serve", str(model), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_healthy(port)
            bodies = [multipart(p.name, p.read_bytes()) for p in paths]
            load_test(port, bodies, 2, 8)  # warm-up
            print(
                f"{'conc':>4} {'req':>5} {'err':>4} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
                f"{'p99 ms':>8} {'vs offline':>10}"
            )
            for c in (1, 4, 16):
                row = load_test(port, bodies, c, args.requests)
                row["ratio_to_offline"] = row["throughput_img_s"] / results["offline_img_s"]
                results["levels"].append(row)
                print(
                    f"{c:>4} {row['requests']:>5} {row['errors']:>4} "
                    f"{row['throughput_img_s']:>7.2f} {row['p50_ms']:>8.0f} {row['p95_ms']:>8.0f} "
                    f"{row['p99_ms']:>8.0f} {row['ratio_to_offline']:>10.2f}"
                )
        finally:
            server.terminate()
            server.wait(30)
    results["total_errors"] = sum(r["errors"] for r in results["levels"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"errors over the whole load test: {results['total_errors']}; wrote {args.out}")


if __name__ == "__main__":
    main()
