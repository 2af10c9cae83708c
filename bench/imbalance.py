"""Does imbalance handling help CamVid's rare classes? Train the same model with each loss /
class-weight option and compare the IoU of pole, sign, fence, pedestrian and bicyclist.

    python bench/imbalance.py                      # 4 variants x 20 epochs at 180x240, ~12 min
    python bench/imbalance.py --size 360x480 --epochs 30 --variants ce,median

Every variant trains the same model from the same seed on the same images; only the loss
changes. The IoU comes from the best checkpoint's confusion matrix over the whole val split
(void ignored). Prints a table and writes bench/results/imbalance.json. Needs
../shared/datasets/camvid (or --data).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from pixelseg.analysis.evaluation import evaluate_run
from pixelseg.config import load_config
from pixelseg.engine.trainer import train
from pixelseg.files import atomic_write_text

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "camvid"
RARE = ("pole", "sign", "fence", "pedestrian", "bicyclist")
# variant name -> the overrides that define it (everything else is shared)
VARIANTS = {
    "ce": ["train.loss=ce"],
    "median": ["train.loss=ce", "train.class_weights=median"],
    "sqrt": ["train.loss=ce", "train.class_weights=sqrt"],
    "ce+dice": ["train.loss=ce+dice"],
    "ce+lovasz": ["train.loss=ce+lovasz"],
    "median+dice": ["train.loss=ce+dice", "train.class_weights=median"],
}


def rare_iou(names: list[str], ious: list[float | None]) -> dict[str, float | None]:
    """IoU of the rare classes, matched by name prefix ('sign' matches 'sign/symbol')."""
    out = {}
    for rare in RARE:
        idx = next((i for i, n in enumerate(names) if n.lower().startswith(rare)), None)
        out[rare] = None if idx is None else ious[idx]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--variants", default="ce,median,sqrt,ce+dice")
    ap.add_argument("--model", default="lightseg")
    ap.add_argument("--size", default="180x240", help="training and evaluation size (resize)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "results" / "imbalance.json"))
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data}: CamVid not found (pass --data)")
    h, w = (int(v) for v in args.size.split("x"))
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            cfg = load_config(
                overrides=[
                    f"data.root={args.data}",
                    f"out_dir={tmp}",
                    f"name={variant}",
                    f"model.name={args.model}",
                    f"data.resize=[{h}, {w}]",
                    "data.cache=true",
                    f"train.epochs={args.epochs}",
                    "train.batch_size=8",
                    "train.seed=0",
                    *VARIANTS[variant],
                ]
            )
            t0 = time.time()
            result = train(cfg, progress=False, log=lambda *_: None)
            ev = evaluate_run(result.run_dir, args.data, "val", gap=False, progress=False)
            ious = ev.result.scores.per_class.iou
            rare = rare_iou(ev.class_names, ious)
            known = [v for v in rare.values() if v is not None]
            row = {
                "variant": variant,
                "overrides": VARIANTS[variant],
                "val_miou": round(ev.result.scores.mean_iou, 4),
                "rare_mean_iou": round(sum(known) / len(known), 4) if known else None,
                "rare_iou": {k: None if v is None else round(v, 4) for k, v in rare.items()},
                "pixel_accuracy": round(ev.result.scores.pixel_accuracy, 4),
                "best_epoch": result.best_epoch,
                "seconds": round(time.time() - t0, 1),
            }
            rows.append(row)
            print(
                f"{variant:<12} mIoU {row['val_miou']:.4f}  rare-class mIoU "
                f"{row['rare_mean_iou']:.4f}  ({row['seconds']:.0f} s)",
                flush=True,
            )
    head = "| variant | val mIoU | rare mIoU | " + " | ".join(RARE) + " | pixel acc | time |"
    print("\n" + head + "\n|" + "---|" * (len(RARE) + 5))
    for r in rows:
        rare = " | ".join("-" if v is None else f"{v:.3f}" for v in r["rare_iou"].values())
        print(
            f"| {r['variant']} | {r['val_miou']:.4f} | {r['rare_mean_iou']:.4f} | {rare} | "
            f"{r['pixel_accuracy']:.4f} | {r['seconds']:.0f} s |"
        )
    meta = {
        "model": args.model,
        "size": [h, w],
        "epochs": args.epochs,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}",
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
