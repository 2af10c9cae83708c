"""Contiguous (NCHW) against channels-last (NHWC) weights and inputs, in one run: the evidence for
``engine.device.memory_format``.

    python bench/memory_format.py [--size 360x480] [--batch 4] [--models lightseg,unet,reseg]

For each model and format: the inference forward pass (``predict_probs``, as eval and
``pixelseg predict`` run it) and the training step (forward, cross-entropy, backward, Adam), in
milliseconds, the median of a few repeats after two warm-up calls. Random weights and inputs:
speed does not depend on them. Writes JSON to bench/results/memory_format.json. Run it alone:
other jobs on the cores skew every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pixelseg.engine.inference import predict_probs
from pixelseg.files import atomic_write_text
from pixelseg.models import create_model

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
KNOBS = {"lightseg": {"width": 16}, "unet": {"width": 16}, "reseg": {"depth": 3}}


def median_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(name: str, fmt: torch.memory_format, size, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name, 12, 3, **KNOBS.get(name, {})).to(memory_format=fmt)
    x = torch.randn(batch, 3, *size).contiguous(memory_format=fmt)
    y = torch.randint(0, 12, (batch, *size))
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def infer():
        with torch.inference_mode():
            predict_probs(model, x)

    def train_step():
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return {
        "inference_ms": median_ms(infer, repeats),
        "train_step_ms": median_ms(train_step, repeats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="360x480", help="HxW")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--models", default="lightseg,unet,reseg")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    results = {}
    for name in args.models.split(","):
        results[name] = {
            label: measure(name, fmt, size, args.batch, args.repeats)
            for label, fmt in FORMATS.items()
        }
        c, n = results[name]["contiguous"], results[name]["channels_last"]
        print(
            f"{name:10s} inference {c['inference_ms']:6.0f} -> {n['inference_ms']:6.0f} ms"
            f"   train step {c['train_step_ms']:6.0f} -> {n['train_step_ms']:6.0f} ms",
            flush=True,
        )
    out = Path(__file__).parent / "results" / "memory_format.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads"}
    meta |= {"torch": torch.__version__, "size": list(size), "batch": args.batch}
    atomic_write_text(out, json.dumps({**meta, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
