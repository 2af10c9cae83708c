"""Training speed of pixelseg's engine on this machine: where a step's time goes, what the
trainer costs over a plain loop, how much of the hardware it uses, and how it compares with
segmentation-models-pytorch.

    python bench/train_speed.py                                   # ~3-5 min on 2 CPU cores
    python bench/train_speed.py --size 240x320 --steps 3 --models unet
    python bench/train_speed.py --smp-python /tmp/smp-venv/bin/python

Sections (each model at its default knobs, 7 classes, synthetic scenes written to a temp dir):

(a) step-time breakdown through the real ``Trainer`` loop (its optional StepTimer hooks):
    data wait, on-device augmentation + normalisation, forward (+ loss), backward, optimizer
    (+ clipping, EMA), other (metrics, NaN check). Target on CPU: data + overhead <= 5%.
(b) the Trainer against a plain hand-written loop (``for x, y in loader: zero_grad; ce(model(x),
    y).backward(); step``) on the same model and data: images/s and their ratio.
(c) achieved training GFLOP/s (3 x forward FLOPs, forward = 2 x MACs from
    pixelseg.models.summary) as a share of the fp32 matmul rate measured in the same run.
(d) smp's Unet in a separate virtual environment (a different torch build), by subprocess.
(e) CUDA only: images/s, peak memory, data-wait share and MFU at bf16. Without a GPU it says
    so and reports nothing.
(f) augmentation per sample in the loader against batched on the device (kornia), which sets
    the default of ``augment.on_device`` on this kind of device.

Variants alternate (plain, trainer, plain, trainer, ...) and the best of ``--repeats`` is kept:
on a shared machine the least-disturbed run is the best estimate of the machine's speed, and
ratios are only compared within one run. Prints markdown tables; writes
bench/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from pixelseg.config import load_config
from pixelseg.data.formats import open_split
from pixelseg.data.pipeline import augment_params, train_dataset
from pixelseg.data.scenes import write_scenes
from pixelseg.engine.batch_augment import BatchAugment
from pixelseg.engine.timing import PHASES, StepTimer
from pixelseg.engine.trainer import Trainer
from pixelseg.models import create_model, list_models
from pixelseg.models.summary import summarize

ROOT = Path(__file__).resolve().parent
NUM_CLASSES = 7  # the scenes' classes
DEFAULT_SMP_PYTHON = "/tmp/smp-venv/bin/python"


def matmul_gflops(n: int = 2048, reps: int = 5, dtype=torch.float32, device="cpu") -> float:
    """Best-of-``reps`` rate of an n x n x n matmul: the machine's practical peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def default_models() -> list[str]:
    """The default CNN (unet) and the default RNN (reseg, else any rnn-family model)."""
    entries = {e.name: e for e in list_models()}
    names = (
        ["unet"]
        if "unet" in entries
        else [next(e.name for e in entries.values() if e.family == "cnn")]
    )
    rnn = (
        "reseg"
        if "reseg" in entries
        else next((e.name for e in entries.values() if e.family == "rnn"), None)
    )
    return names + ([rnn] if rnn else [])


def overrides(data: Path, out: Path, model: str, args, device: str, name: str) -> list[str]:
    return [
        f"data.root={data}",
        f"out_dir={out}",
        f"name={name}",
        f"model.name={model}",
        f"train.batch_size={args.batch}",
        f"train.epochs={args.repeats}",
        f"train.max_steps_per_epoch={args.warmup + args.steps}",
        f"train.device={device}",
        f"train.threads={args.threads}",
    ]


def trainer_epoch(trainer: Trainer, epoch: int, warmup: int, sync: bool = True) -> dict:
    trainer.timer = StepTimer(trainer.device, skip=warmup, sync=sync)
    trainer.train_one_epoch(epoch)
    return trainer.timer.summary()


def plain_loop(data: Path, model_name: str, args, cfg) -> float:
    """The seed's loop on the same model, decoded+augmented samples and batch size."""
    torch.manual_seed(0)
    model = create_model(model_name, NUM_CLASSES).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ce = nn.CrossEntropyLoss(ignore_index=255)
    ds = train_dataset(open_split(str(data), "train"), cfg.data, cfg.augment, 0)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, drop_last=True)
    n, images, t0 = 0, 0, time.perf_counter()
    while n < args.warmup + args.steps:
        for x, y in loader:
            if n == args.warmup:
                t0 = time.perf_counter()
            x = x.float() / 255
            opt.zero_grad()
            loss = ce(model(x), y)
            loss.backward()
            opt.step()
            n += 1
            images += x.shape[0] if n > args.warmup else 0
            if n >= args.warmup + args.steps:
                break
    return images / (time.perf_counter() - t0)


def bench_model(name: str, data: Path, tmp: Path, args, peak: float) -> dict:
    cfg = load_config(overrides=overrides(data, tmp, name, args, "cpu", f"{name}-cpu"))
    trainer = Trainer(cfg, progress=False, log=lambda *a: None)
    macs = summarize(create_model(name, NUM_CLASSES), tuple(args.size)).macs
    plain, timed = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(data, name, args, cfg))
        timed.append(trainer_epoch(trainer, r + 1, args.warmup))
        print(
            f"  {name} round {r + 1}: plain {plain[-1]:.3f} img/s, trainer "
            f"{timed[-1]['images_per_s']:.3f} img/s",
            file=sys.stderr,
        )
    best = max(timed, key=lambda s: s["images_per_s"])
    train_gflops = 6 * macs / 1e9 * best["images_per_s"]  # 3 x (2 x MACs) per image
    share = best["phase_share"]
    return {
        "model": name,
        "family": next(e.family for e in list_models() if e.name == name),
        "forward_gflops_per_image": 2 * macs / 1e9,
        "trainer_images_per_s": best["images_per_s"],
        "plain_images_per_s": max(plain),
        "trainer_over_plain": best["images_per_s"] / max(plain),
        "all_trainer_images_per_s": [s["images_per_s"] for s in timed],
        "all_plain_images_per_s": plain,
        "train_gflops_per_s": train_gflops,
        "share_of_matmul": train_gflops / peak,
        "breakdown": best,
        "data_plus_overhead_share": share["data"] + share["augment"] + share["other"],
    }


def augmentation_paths(data: Path, args) -> dict:
    """ms per batch: decode only, + per-sample augmentation (PIL/numpy, in the loader),
    + batched augmentation with kornia on this CPU."""
    cfg = load_config(overrides=[f"data.root={data}"])
    source = open_split(str(data), "train")
    no_aug = load_config(overrides=[f"data.root={data}", "augment.enabled=false"])
    per_sample = train_dataset(source, cfg.data, cfg.augment, 0)
    plain = train_dataset(source, no_aug.data, no_aug.augment, 0)
    batch_aug = BatchAugment(augment_params(cfg.augment), 0)
    batch_aug.set_epoch(1)

    def time_it(ds, post=None) -> float:
        best = float("inf")
        for _ in range(max(3, args.repeats)):  # cheap: a few more rounds steady the estimate
            loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, drop_last=True)
            t, n = time.perf_counter(), 0
            for x, y in loader:
                if post is not None:
                    post(x, y)
                n += 1
            best = min(best, (time.perf_counter() - t) / n)
        return best * 1e3

    decode = time_it(plain)
    cpu = time_it(per_sample)
    batched = time_it(plain, batch_aug)
    return {
        "decode_ms": decode,
        "per_sample_ms": cpu,
        "on_device_ms": batched,
        "faster": "per_sample" if cpu <= batched else "on_device",
    }


def smp_section(python: str | None, data: Path, args, pixelseg_unet: float | None) -> dict:
    if not python or not Path(python).exists():
        return {"skipped": f"no smp environment at {python} (see the header of bench/smp_speed.py)"}
    cmd = [
        python,
        str(ROOT / "smp_speed.py"),
        "--data",
        str(data / "train"),
        "--size",
        "x".join(map(str, args.size)),
        "--classes",
        str(NUM_CLASSES),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if out.returncode != 0:
        return {"skipped": f"smp run failed: {out.stderr.strip().splitlines()[-1:]}"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if pixelseg_unet:
        res["pixelseg_unet_over_smp"] = pixelseg_unet / res["images_per_s"]
    return res


def gpu_section(data: Path, tmp: Path, args) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no GPU (CUDA not available): no GPU figures"}
    peak = matmul_gflops(8192, 5, torch.bfloat16, "cuda")
    rows = []
    for name in args.models:
        gargs = argparse.Namespace(**{**vars(args), "batch": args.gpu_batch})
        cfg = load_config(overrides=overrides(data, tmp, name, gargs, "cuda", f"{name}-gpu"))
        trainer = Trainer(cfg, progress=False, log=lambda *a: None)
        macs = summarize(create_model(name, NUM_CLASSES), tuple(args.size)).macs
        torch.cuda.reset_peak_memory_stats()
        fast = trainer_epoch(trainer, 1, args.warmup, sync=False)  # throughput
        parts = trainer_epoch(trainer, 2, args.warmup, sync=True)  # attribution
        flops = 6 * macs / 1e9 * fast["images_per_s"]
        rows.append(
            {
                "model": name,
                "batch": args.gpu_batch,
                "images_per_s": fast["images_per_s"],
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                "data_wait_share": parts["phase_share"]["data"],
                "breakdown": parts,
                "train_gflops_per_s": flops,
                "mfu_bf16": flops / peak,
            }
        )
    return {"device": torch.cuda.get_device_name(), "bf16_matmul_gflops": peak, "models": rows}


def print_tables(res: dict) -> None:
    m = res["machine"]
    print(
        f"\n## Training speed: {m['torch']} on {m['cpu_threads']} CPU threads, size "
        f"{res['size'][0]}x{res['size'][1]}, batch {res['batch']}, {res['steps']} timed steps "
        f"(best of {res['repeats']}); fp32 matmul {m['matmul_gflops']:.0f} GFLOP/s; "
        f"load average {m['loadavg_before']:.1f} -> {m['loadavg_after']:.1f}\n"
    )
    print(
        "| model | family | fwd GFLOP/img | trainer img/s | plain loop img/s | trainer/plain "
        "| train GFLOP/s | % of matmul |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in res["models"]:
        print(
            f"| {r['model']} | {r['family']} | {r['forward_gflops_per_image']:.1f} | "
            f"{r['trainer_images_per_s']:.3f} | {r['plain_images_per_s']:.3f} | "
            f"{r['trainer_over_plain']:.2f} | {r['train_gflops_per_s']:.1f} | "
            f"{100 * r['share_of_matmul']:.0f}% |"
        )
    print("\n### (a) Step-time breakdown in the Trainer (share of the step)\n")
    print("| model | step s | " + " | ".join(PHASES) + " | data+overhead |")
    print("|---|---:|" + "---:|" * len(PHASES) + "---:|")
    for r in res["models"]:
        b = r["breakdown"]
        print(
            f"| {r['model']} | {b['step_s']:.2f} | "
            + " | ".join(f"{100 * b['phase_share'][p]:.1f}%" for p in PHASES)
            + f" | {100 * r['data_plus_overhead_share']:.1f}% |"
        )
    a = res["augmentation"]
    print("\n### (f) Augmentation per batch on this CPU\n")
    print(
        "| decode only | + per-sample aug (loader) | + batched aug (kornia, on device) | faster |"
    )
    print("|---:|---:|---:|---|")
    print(
        f"| {a['decode_ms']:.1f} ms | {a['per_sample_ms']:.1f} ms | {a['on_device_ms']:.1f} ms "
        f"| {a['faster']} |"
    )
    s = res["smp"]
    print("\n### (d) segmentation-models-pytorch (separate venv, different torch build)\n")
    if "skipped" in s:
        print(f"skipped: {s['skipped']}")
    else:
        print(
            "| model | torch | size | fwd GFLOP/img | img/s | % of its matmul "
            "| pixelseg unet / smp |"
        )
        print("|---|---|---|---:|---:|---:|---:|")
        print(
            f"| smp Unet({s['encoder']}) | {s['torch']} | {s['padded_size'][0]}x"
            f"{s['padded_size'][1]} (padded) | {s['forward_gflops_per_image']:.1f} | "
            f"{s['images_per_s']:.3f} | {100 * s['share_of_matmul']:.0f}% | "
            f"{s.get('pixelseg_unet_over_smp', float('nan')):.2f} |"
        )
    g = res["gpu"]
    print("\n### (e) GPU\n")
    if "skipped" in g:
        print(g["skipped"])
    else:
        print(f"{g['device']}, bf16 matmul {g['bf16_matmul_gflops']:.0f} GFLOP/s\n")
        print("| model | batch | img/s | peak GiB | data wait | MFU (bf16) |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in g["models"]:
            print(
                f"| {r['model']} | {r['batch']} | {r['images_per_s']:.1f} | "
                f"{r['peak_memory_gib']:.2f} | {100 * r['data_wait_share']:.1f}% | "
                f"{100 * r['mfu_bf16']:.0f}% |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="360x480", help="HxW of the synthetic images")
    ap.add_argument("--models", default=None, help="comma-separated (default: unet + reseg)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    ap.add_argument("--repeats", type=int, default=2, help="alternating rounds; best is kept")
    ap.add_argument("--images", type=int, default=16, help="training images to generate")
    ap.add_argument("--gpu-batch", type=int, default=16)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (train.threads; 0 = the trainer's choice: every core)",
    )
    ap.add_argument(
        "--smp-python",
        default=DEFAULT_SMP_PYTHON,
        help="python of a venv with segmentation-models-pytorch ('' to skip)",
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "train_speed.json"))
    args = ap.parse_args()
    args.size = [int(v) for v in args.size.lower().split("x")]
    args.models = args.models.split(",") if args.models else default_models()

    t_start = time.time()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pixelseg-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "scenes"
        write_scenes(data, {"train": args.images, "val": 2}, size=tuple(args.size), progress=False)
        peak = matmul_gflops()
        models = []
        for name in args.models:
            models.append(bench_model(name, data, tmp / "runs", args, peak))
        aug = augmentation_paths(data, args)
        unet = next((r["trainer_images_per_s"] for r in models if r["model"] == "unet"), None)
        smp = smp_section(args.smp_python, data, args, unet)
        gpu = gpu_section(data, tmp / "runs", args)
        peak = max(peak, matmul_gflops())  # the least-disturbed estimate of the two
        for r in models:
            r["share_of_matmul"] = r["train_gflops_per_s"] / peak
    res = {
        "machine": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(),
            "matmul_gflops": peak,
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg()[0],
        },
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "models": models,
        "augmentation": aug,
        "smp": smp,
        "gpu": gpu,
        "seconds": time.time() - t_start,
    }
    print_tables(res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"\nwrote {out} ({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
