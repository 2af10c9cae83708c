"""Benchmark every registered model on this machine's CPU.

For each model (default knobs, 11 classes): parameters, forward GFLOPs (2 x MACs, from
``pixelseg.models.summary``), peak activation memory of a forward with autograd, training
images/s (forward + backward + Adam step) and inference images/s (eval, no_grad), and the
achieved GFLOP/s of each as a share of the fp32 matmul rate measured in the same run (a large
``torch.mm``), which says how well the model uses the hardware, not just how fast it is.

    python bench/models.py                          # all models at 360x480, ~3-5 min on 2 cores
    python bench/models.py --models lightseg,unet:context=renet --size 240x320 --steps 5

Training FLOPs are counted as 3 x forward (the backward costs about two forwards). Timings on a
shared machine are only as good as its idleness: the load average is recorded next to them.
Prints a markdown table and writes JSON to bench/results/models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from pixelseg.models import create_model, list_models
from pixelseg.models.summary import summarize

NUM_CLASSES = 11
# Besides every registered model: the same U-Net with recurrent context, for the comparison the
# knob exists for.
EXTRA_VARIANTS = ["unet:context=renet"]


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"unet:context=renet:depth=3"`` -> ("unet", {"context": "renet", "depth": 3})."""
    name, *items = spec.split(":")
    knobs = {}
    for item in items:
        key, _, value = item.partition("=")
        knobs[key] = yaml.safe_load(value)
    return name, knobs


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` fp32 rate of an n x n x n matmul: the machine's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up: thread pool, caches
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def time_training(model, x, y, warmup: int, steps: int) -> float:
    """Seconds per training step (forward, backward, Adam step), after ``warmup`` steps."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


@torch.no_grad()
def time_inference(model, x, warmup: int, steps: int) -> float:
    """Seconds per eval-mode forward, after ``warmup`` forwards."""
    model.eval()
    for _ in range(warmup):
        model(x)
    t = time.perf_counter()
    for _ in range(steps):
        model(x)
    return (time.perf_counter() - t) / steps


def bench_model(spec: str, size, batch: int, warmup: int, steps: int, peak: float) -> dict:
    name, knobs = parse_spec(spec)
    torch.manual_seed(0)
    model = create_model(name, NUM_CLASSES, **knobs)
    summary = summarize(model, size, batch_size=1)
    gflops = summary.flops / 1e9  # per image, forward
    x = torch.randn(batch, 3, *size)
    y = torch.randint(0, NUM_CLASSES, (batch, *size))
    load_before = os.getloadavg()[0]
    train_s = time_training(model, x, y, warmup, steps)
    infer_s = time_inference(model, x, warmup, steps)
    train_ips, infer_ips = batch / train_s, batch / infer_s
    train_rate, infer_rate = 3 * gflops * train_ips, gflops * infer_ips
    return {
        "model": spec,
        "params": summary.total_params,
        "gflops": gflops,
        "act_mib": summary.peak_activation_bytes / 2**20,
        "train_img_s": train_ips,
        "train_gflop_s": train_rate,
        "train_share": train_rate / peak,
        "infer_img_s": infer_ips,
        "infer_gflop_s": infer_rate,
        "infer_share": infer_rate / peak,
        "load_avg_1m": max(load_before, os.getloadavg()[0]),
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| model | params | GFLOPs | act. MiB | train img/s | train GFLOP/s (% mm) "
        "| infer img/s | infer GFLOP/s (% mm) | load |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['gflops']:.2f} | {r['act_mib']:.0f} "
            f"| {r['train_img_s']:.2f} | {r['train_gflop_s']:.1f} ({100 * r['train_share']:.0f}%) "
            f"| {r['infer_img_s']:.2f} | {r['infer_gflop_s']:.1f} ({100 * r['infer_share']:.0f}%) "
            f"| {r['load_avg_1m']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="360x480", help="HxW")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated NAME or NAME:key=value[:key=value]; default: all registered "
        f"models plus {', '.join(EXTRA_VARIANTS)}",
    )
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "models.json"))
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    specs = (
        args.models.split(",") if args.models else [e.name for e in list_models()] + EXTRA_VARIANTS
    )
    peak = matmul_gflops()
    print(
        f"# models at {h}x{w}, batch {args.batch}, {NUM_CLASSES} classes; "
        f"{torch.get_num_threads()} threads; fp32 matmul (2048^3): {peak:.1f} GFLOP/s",
        file=sys.stderr,
    )
    rows = []
    for spec in specs:
        t = time.perf_counter()
        rows.append(bench_model(spec, (h, w), args.batch, args.warmup, args.steps, peak))
        print(f"  {spec}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)

    table = markdown(rows)
    print(f"\nfp32 matmul: {peak:.1f} GFLOP/s; size {h}x{w}, batch {args.batch}\n")
    print(table)
    result = {
        "size": [h, w],
        "batch": args.batch,
        "num_classes": NUM_CLASSES,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "matmul_gflop_s": peak,
        "training_flops": "3 x forward",
        "models": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
