"""What each training loss costs per step on this machine: forward + backward of the loss
alone, on the channels-last logits a model produces in training (engine/device.py).

    python bench/loss_speed.py                                   # the demo's shape: 8x7x64x64
    python bench/loss_speed.py --shape 4x11x360x480
    python bench/loss_speed.py --baseline /tmp/old/src           # and another checkout's

With --baseline, each source tree runs in its own process (PYTHONPATH), alternating, and the
best of --repeats is kept per loss. A quarter of the target rows are ignored pixels (255), as
in datasets with a void label. Run it alone: on 2 cores another job slows it 3-5x. Writes
bench/results/loss_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "loss_speed.json"
NAMES = ("ce", "ohem", "dice", "lovasz", "ce+dice")


def time_losses(shape: tuple[int, ...], steps: int) -> dict[str, float]:
    """Milliseconds per forward + backward of each loss (run inside the tree under test)."""
    import torch

    from pixelseg.engine.losses import build_loss

    torch.manual_seed(0)
    b, c, h, w = shape
    logits = torch.randn(b, c, h, w).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, c, (b, h, w))
    target[:, : h // 4] = 255
    out = {}
    for name in NAMES:
        loss = build_loss(name, c)
        x = logits.clone().requires_grad_()
        for _ in range(3):
            loss(x, target).backward()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss(x, target).backward()
        out[name] = 1000 * (time.perf_counter() - t0) / steps
    return out


def run_tree(src: str, shape: str, steps: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src}
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from loss_speed import time_losses; "
        "print(json.dumps(time_losses(tuple(int(v) for v in sys.argv[2].split('x')), "
        "int(sys.argv[3]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "bench"), shape, str(steps)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="8x7x64x64", help="BxCxHxW of the logits")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", help="another checkout's src/ to compare with")
    args = ap.parse_args()
    trees = {"current": str(ROOT / "src")}
    if args.baseline:
        trees = {"baseline": args.baseline, **trees}
    best: dict[str, dict[str, float]] = {k: {} for k in trees}
    for _ in range(args.repeats):
        for label, src in trees.items():
            for name, ms in run_tree(src, args.shape, args.steps).items():
                best[label][name] = min(ms, best[label].get(name, float("inf")))
    print(f"loss forward + backward, ms per step, logits {args.shape} (channels-last)\n")
    print("| loss | " + " | ".join(trees) + (" | ratio |" if args.baseline else ""))
    print("|---|" + "---:|" * (len(trees) + bool(args.baseline)))
    for name in NAMES:
        row = [f"{best[k][name]:.2f}" for k in trees]
        if args.baseline:
            row.append(f"{best['baseline'][name] / best['current'][name]:.2f}x")
        print(f"| {name} | " + " | ".join(row) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"shape": args.shape, "ms": best}, indent=1))


if __name__ == "__main__":
    main()
