"""Does a 2-process torchrun training exit cleanly on a busy machine? Run N consecutive trainings
on tiny generated scenes with CPU-hog processes beside them and count the exit codes.

    python bench/torchrun_soak.py                 # 30 runs, 2 hogs (a few minutes per 10 runs)
    python bench/torchrun_soak.py -n 5 --hogs 1

A run that finishes training but aborts at exit (SIGABRT, "terminate called without an active
exception") makes torchrun report the job as failed; this counts those. Prints one line per run
and a summary, and writes bench/results/torchrun_soak.json (with the stderr tail of failures).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pixelseg.data.scenes import write_scenes
from pixelseg.files import atomic_write_text

ROOT = Path(__file__).resolve().parent
ARGS = [
    "model.width=4",
    "model.depth=2",
    "model.norm=group",
    "augment.enabled=false",
    "train.global_batch_size=4",
    "train.device=cpu",
    "train.epochs=2",
]


def hog() -> None:  # pragma: no cover - a busy loop until terminated
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


def torchrun(data: Path, out: Path, name: str, timeout: float) -> tuple[int, float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONFAULTHANDLER"] = "1"  # an abort prints every thread's Python stack: where it was
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "pixelseg",
        "train",
        "--quiet",
        "--data",
        str(data),
        "--out-dir",
        str(out),
        "--name",
        name,
        *ARGS,
    ]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        code, tail = proc.returncode, (proc.stdout[-1500:] + proc.stderr[-3000:])
    except subprocess.TimeoutExpired as e:
        code, tail = -1, f"timed out after {timeout:.0f}s: {str(e.stderr)[-2000:]}"
    return code, time.time() - t0, tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=30)
    ap.add_argument("--hogs", type=int, default=2, help="CPU-hog processes beside the runs")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--out", default=str(ROOT / "results" / "torchrun_soak.json"))
    args = ap.parse_args()

    hogs = [mp.Process(target=hog, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="pixelseg-soak-") as tmp:
            data = Path(tmp) / "scenes"
            write_scenes(data, {"train": 8, "val": 5}, size=(32, 32), progress=False)
            for i in range(args.runs):
                code, seconds, tail = torchrun(data, Path(tmp) / "runs", f"r{i}", args.timeout)
                aborted = "terminate called" in tail or "SIGABRT" in tail
                results.append(
                    {"run": i, "exit": code, "seconds": round(seconds, 1), "aborted": aborted}
                )
                if code != 0:
                    results[-1]["tail"] = tail
                print(
                    f"run {i + 1:>3}/{args.runs}: exit {code:>3}  {seconds:6.1f}s"
                    + ("  (abort at exit)" if aborted else ""),
                    flush=True,
                )
    finally:
        for h in hogs:
            h.terminate()
    ok = sum(r["exit"] == 0 for r in results)
    print(f"\n{ok} of {len(results)} runs exited 0 ({args.hogs} CPU hogs beside them)")
    out = Path(args.out)
    summary = {
        "runs": len(results),
        "exited_0": ok,
        "hogs": args.hogs,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "results": results,
    }
    atomic_write_text(out, json.dumps(summary, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
