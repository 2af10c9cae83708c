"""Peak memory of `pixelseg serve` under large cheap uploads (issue 30): flat PNGs of many pixels
that cost a few kB to send.

    python bench/serve_memory.py [--run RUN] [--size 5000] [--concurrency 4] [--rounds 1]

Trains a tiny lightseg run on generated scenes (a few seconds; or serves --run), starts
`pixelseg serve RUN` with its defaults on a free port, sends --concurrency flat
--size x --size PNGs at once, each asking for every output (mask, overlay, uncertainty,
objects), and reports the peak RSS of the server's process tree (sampled from /proc every
20 ms), each request's status and latency, and the slowest /health answer meanwhile. Writes
bench/results/serve_memory.json. Run it alone: the figures are the machine's.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import free_port, multipart, wait_healthy  # noqa: E402

QUERY = "/predict?mask=true&overlay=true&uncertainty=true&objects=true"


def tiny_run(root: Path, resize: str | None) -> Path:
    from pixelseg import load_config, train
    from pixelseg.data.scenes import write_scenes

    write_scenes(root / "scenes", {"train": 8, "val": 4}, size=(64, 80), progress=False)
    overrides = [
        f"data.root={root / 'scenes'}",
        f"out_dir={root / 'runs'}",
        "name=tiny",
        "model.name=lightseg",
        "train.epochs=1",
        "train.max_steps_per_epoch=2",
        "train.batch_size=4",
        "train.device=cpu",
    ]
    if resize:
        overrides.append(f"data.resize=[{resize.replace('x', ',')}]")
    return train(load_config(overrides=overrides), progress=False).run_dir


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop = pid, every, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(self.every)


def flat_png(size: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), (90, 140, 60), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def send(port: int, body: bytes, boundary: str, out: list, i: int) -> None:
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request(
            "POST",
            QUERY,
            body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        r = conn.getresponse()
        payload = r.read()
        error = "" if r.status == 200 else json.loads(payload).get("error", "")[:120]
        out[i] = {"status": r.status, "bytes": len(payload), "error": error}
    except (OSError, ValueError) as e:
        out[i] = {"status": None, "bytes": 0, "error": repr(e)}
    out[i]["seconds"] = time.perf_counter() - t0


def health_watch(port: int, stop: threading.Event, waits: list) -> None:
    while not stop.wait(0.1):
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/health")
            conn.getresponse().read()
        except OSError:
            continue
        waits.append(time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="serve this run or model instead of a tiny fresh one")
    ap.add_argument("--resize", help="train the tiny run with data.resize=HxW (e.g. 360x480)")
    ap.add_argument("--size", type=int, default=5000, help="the flat PNGs' width and height")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default="bench/results/serve_memory.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.run) if args.run else tiny_run(Path(tmp), args.resize)
        data = flat_png(args.size)
        print(f"model {model}; flat {args.size}x{args.size} PNG of {len(data) / 1e3:.0f} kB")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "pixelseg", "serve", str(model), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_healthy(port)
            idle = tree_rss(server.pid)
            sampler = PeakSampler(server.pid)
            sampler.start()
            stop, waits = threading.Event(), []
            watcher = threading.Thread(target=health_watch, args=(port, stop, waits))
            watcher.start()
            rows: list = []
            t0 = time.perf_counter()
            for _ in range(args.rounds):
                out: list = [None] * args.concurrency
                threads = [
                    threading.Thread(target=send, args=(port, *multipart("flat.png", data), out, i))
                    for i in range(args.concurrency)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                rows += out
            wall = time.perf_counter() - t0
            stop.set()
            watcher.join()
            sampler.stop.set()
            sampler.join()
        finally:
            server.terminate()
            server.wait(30)
    seconds = [r["seconds"] for r in rows]
    result = {
        "model": str(model),
        "image": f"{args.size}x{args.size} flat PNG, {len(data)} bytes",
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "idle_rss_mb": idle / 2**20,
        "peak_rss_mb": sampler.peak / 2**20,
        "wall_s": wall,
        "latency_s": {"min": min(seconds), "max": max(seconds), "mean": float(np.mean(seconds))},
        "statuses": [r["status"] for r in rows],
        "errors": [r["error"] for r in rows if r["error"]],
        "health_max_s": max(waits) if waits else None,
        "requests": rows,
    }
    print(f"{'status':>6} {'seconds':>8} {'answer kB':>10}  error")
    for r in rows:
        print(f"{r['status']!s:>6} {r['seconds']:>8.2f} {r['bytes'] / 1e3:>10.0f}  {r['error']}")
    print(
        f"server RSS: idle {result['idle_rss_mb']:.0f} MB, peak {result['peak_rss_mb']:.0f} MB; "
        f"wall {wall:.1f} s; slowest /health {result['health_max_s'] or 0:.2f} s"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
