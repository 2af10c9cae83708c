"""How long `pixelseg demo` takes, as a new user runs it, and where its time goes.

    python bench/demo_time.py                              # today's code, once (~2.5 min)
    python bench/demo_time.py --baseline /tmp/old/src      # and another checkout's, alternating

Each run is a fresh `pixelseg demo --quiet` in a new temporary folder (so the scenes are
generated, as on a first run), in its own process, with PYTHONPATH set to the source tree under
test. The demo prints its own breakdown ("time  scenes 3s  set-up 1s  training ..."), which is
read back with its val mIoU. With --baseline, runs alternate (baseline, current, ...) so that
both see the same machine; the best of --repeats is kept. Run it alone: on 2 cores any other
CPU job slows a torch run 3-5x. Writes bench/results/demo_time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "demo_time.json"


def run_demo(src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        t0 = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "pixelseg", "demo", "--quiet", "--out", tmp],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.time() - t0
    if done.returncode:
        raise SystemExit(f"demo failed ({src}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    miou = float(re.search(r"val mIoU ([0-9.]+)", done.stdout).group(1))
    phases = {}
    line = re.search(r"^\s+time\s+(.+)$", done.stdout, re.M)
    if line:  # newer demos print their own breakdown
        phases = {k.strip(): float(v) for k, v in re.findall(r"([a-z +-]+?) (\d+)s", line.group(1))}
    return {"src": str(src), "wall_s": round(wall, 1), "val_miou": miou, "phases": phases}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", type=Path, help="src/ folder of another checkout to compare")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    trees = {"current": ROOT / "src"}
    if args.baseline:
        trees = {"baseline": args.baseline, **trees}
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, src in trees.items():
            r = run_demo(src)
            print(f"{name}: {r['wall_s']:.0f} s, val mIoU {r['val_miou']:.4f}  {r['phases']}")
            if name not in best or r["wall_s"] < best[name]["wall_s"]:
                best[name] = r
    print("\n| code | wall (s) | val mIoU | where the time went |\n|---|---|---|---|")
    for name, r in best.items():
        where = ", ".join(f"{k} {v:.0f}s" for k, v in r["phases"].items()) or "-"
        print(f"| {name} | {r['wall_s']:.0f} | {r['val_miou']:.4f} | {where} |")
    if "baseline" in best:
        print(f"\nspeed-up: {best['baseline']['wall_s'] / best['current']['wall_s']:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cpus": os.cpu_count(), "runs": best}, indent=1))


if __name__ == "__main__":
    main()
