"""Train every model family on the built-in scenes with the real trainer; report the best val
mIoU each reaches and the wall time it took. Prints a table, writes bench/results/families.json.

    python bench/families.py [--models unet,renet] [--epochs 30] [--size 64x64] [--train 800]

The per-family knobs are small CPU budgets for 64x64 scenes, not tuned optima.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pixelseg
from pixelseg.cli.demo import DEMO_OVERRIDES
from pixelseg.data.scenes import write_scenes

FAMILY_KNOBS = {
    "unet": ["model.width=16", "model.depth=4"],
    # 64 px scenes: small ASPP rates (the defaults are for ~500 px images, see DeepLab's
    # docstring) and classification at 1/2 instead of 1/4 (decoder_stride=2).
    # A family's own train.epochs wins over --epochs: the small models need more epochs, and
    # the table reports the time each took.
    "deeplab": [
        "model.width=16",
        "model.output_stride=8",
        "model.dilations=[1, 2, 3]",
        "model.decoder_stride=2",
        "train.epochs=60",
    ],
    "lightseg": ["model.width=32", "model.decoder_stride=2", "train.epochs=60"],
    "renet": ["model.patch_size=2", "model.hidden_size=64", "model.embed_dim=48"],
    "reseg": ["model.width=16", "model.hidden_size=48", "train.epochs=45"],
}
# The demo's recipe (pixelseg/cli/demo.py) without its model and epochs: every family trains
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
        data = write_scenes(
            Path(tmp) / "scenes", {"train": args.train, "val": 60}, (h, w), progress=False
        )
        for name in args.models.split(","):
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
    print("\n| model | knobs | epochs | best val mIoU | time |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['knobs']} | {r['epochs']} | "
            f"{r['best_val_miou']:.4f} | {r['seconds']:.0f} s |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"size": [h, w], "train_images": args.train, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
