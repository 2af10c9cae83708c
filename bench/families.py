"""Train every model family on the built-in scenes with the real trainer; report the best val
mIoU each reaches and the wall time it took. Prints a table, writes bench/results/families.json.

    python bench/families.py [--models unet,renet] [--epochs 30] [--size 64x64] [--train 800]

The per-family knobs are small CPU budgets for 64x64 scenes, not tuned optima. A family listed
in FAMILY_TRAIN trains on more scenes than --train (the same 60 validation scenes for all).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pixelseg
from pixelseg.data.scenes import write_scenes
from pixelseg.workflows.demo import DEMO_OVERRIDES

FAMILY_KNOBS = {
    "unet": ["model.width=16", "model.depth=4"],
    # 64 px scenes: small ASPP rates (the defaults are for ~500 px images, see DeepLab's
    # docstring) and classification at 1/2 instead of 1/4 (decoder_stride=2).
    # A family's own train.epochs wins over --epochs; the table reports the time each took.
    "deeplab": [
        "model.width=16",
        "model.output_stride=8",
        "model.dilations=[1, 2, 3]",
        "model.decoder_stride=2",
    ],
    # Full-resolution decoder step; more distinct scenes instead of more epochs (FAMILY_TRAIN).
    "lightseg": ["model.width=32", "model.decoder_stride=1"],
    "renet": ["model.patch_size=2", "model.hidden_size=64", "model.embed_dim=48"],
    "reseg": ["model.width=16", "model.hidden_size=48", "train.epochs=45"],
}
# Training scenes per family where --train is too few: more distinct scenes beat more epochs
# over the same 800. deeplab: 0.832 after 60 epochs of 800 (255 s), 0.852 after 30 of 2000
# (280 s); lightseg: 0.840 after 60 of 800, 0.856 after 30 of 2000; renet: 0.784 after 30 of
# 800 (585 s), 0.861 after 30 of 2000 (~1380 s).
FAMILY_TRAIN = {"deeplab": 2000, "lightseg": 2000, "renet": 2000}
# The demo's recipe (pixelseg/workflows/demo.py) without its model and epochs: every family trains
# exactly as the demo trains the U-Net.
COMMON = [o for o in DEMO_OVERRIDES if not o.startswith(("model.", "train.epochs="))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(FAMILY_KNOBS))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--out", default="bench/results/families.json")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets: dict[int, Path] = {}  # train count -> scenes
        for name in args.models.split(","):
            n = FAMILY_TRAIN.get(name, args.train)
            if n not in datasets:  # scene i is the same in every count: seeds are per scene
                datasets[n] = write_scenes(
                    Path(tmp) / f"scenes{n}", {"train": n, "val": 60}, (h, w), progress=False
                )
            data = datasets[n]
            cfg = pixelseg.load_config(
                overrides=[
                    f"data.root={data}",
                    f"out_dir={tmp}/runs",
                    f"model.name={name}",
                    f"train.epochs={args.epochs}",
                    *COMMON,
                    *FAMILY_KNOBS.get(name, []),
                ]
            )
            t0 = time.time()
            result = pixelseg.train(cfg, progress=False, log=lambda *_: None)
            row = {
                "model": name,
                "knobs": cfg.model.knobs,
                "epochs": cfg.train.epochs,
                "train_images": n,
                "best_val_miou": round(result.best_miou, 4),
                "best_epoch": result.best_epoch,
                "seconds": round(time.time() - t0, 1),
            }
            rows.append(row)
            print(
                f"{name:<9} val mIoU {row['best_val_miou']:.4f} (epoch {row['best_epoch']}) "
                f"in {row['seconds']:.0f}s  knobs {cfg.model.knobs}",
                flush=True,
            )
    print("\n| model | knobs | train scenes | epochs | best val mIoU | time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['knobs']} | {r['train_images']} | {r['epochs']} | "
            f"{r['best_val_miou']:.4f} | {r['seconds']:.0f} s |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"size": [h, w], "train_images": args.train, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
