"""Small data: an eighth of CamVid train (46 images), the same time budget, an
ImageNet-pretrained encoder against the same architecture from random weights, scored on val.

    python bench/pretrained_small_data.py [--budget-minutes 15] [--keep DIR] [--arms A,B]

Each arm is `bench/camvid.py --model ...` (the plan sizes the batch, resolution and schedule
around the model, within the budget) on a CamVid folder of symlinks holding every 8th train
image and the whole val split, so the arms differ only in their starting weights:

    pretrained   lightseg 32 wide over EfficientNet-Lite0, ImageNet weights
    scratch      the same model, model.pretrained=none
    native       lightseg 24 wide, pixelseg's best from-scratch CPU model before encoders

Runs one arm after another (never at once: two trainings on two cores time each other out);
prints a table and writes bench/results/pretrained_small_data.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "camvid"
ARMS = {
    "pretrained": ["model.encoder=efficientnet_lite0", "model.width=32"],
    "scratch": ["model.encoder=efficientnet_lite0", "model.width=32", "model.pretrained=none"],
    "native": ["model.width=24"],
}


def subset(data: Path, out: Path, every: int) -> int:
    """``out``: every ``every``-th train image of ``data`` (and its label), all of val."""
    for split in ("train", "trainannot", "val", "valannot"):
        (out / split).mkdir(parents=True)
    names = sorted(p.name for p in (data / "train").glob("*.png"))[::every]
    for name in names:
        for split in ("train", "trainannot"):
            (out / split / name).symlink_to((data / split / name).resolve())
    for name in sorted(p.name for p in (data / "val").glob("*.png")):
        for split in ("val", "valannot"):
            (out / split / name).symlink_to((data / split / name).resolve())
    return len(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--budget-minutes", type=float, default=15.0)
    ap.add_argument("--every", type=int, default=8, help="keep every N-th train image")
    ap.add_argument("--arms", default="pretrained,scratch", help=f"of {', '.join(ARMS)}")
    ap.add_argument("--keep", help="keep the runs in this folder")
    ap.add_argument("overrides", nargs="*", help="key=value for every arm (e.g. train.seed=1)")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "camvid-small"
        n = subset(Path(args.data), data, args.every)
        print(f"{n} train images (every {args.every}th), {args.budget_minutes:g} min per arm")
        for arm in args.arms.split(","):
            name = f"small-{arm}"
            cmd = [sys.executable, str(ROOT / "camvid.py"), "--data", str(data), "--name", name]
            cmd += ["--budget-minutes", str(args.budget_minutes), "--model", "lightseg"]
            cmd += ["--keep", args.keep] if args.keep else []
            cmd += ARMS[arm] + args.overrides
            subprocess.run(cmd, check=True)
            result = json.loads((ROOT / "results" / f"camvid-{name}.json").read_text())
            rows[arm] = {
                "val_miou": result["val"]["mean_iou"],
                "val_tta": result["val_tta"]["mean_iou"],
                "epochs": result["epochs"],
                "wall_minutes": result["wall_minutes"],
                "command": result["command"],
            }
    print(f"\n{'arm':<12}{'val mIoU':>10}{'flip TTA':>10}{'epochs':>8}{'wall min':>10}")
    for arm, r in rows.items():
        print(
            f"{arm:<12}{r['val_miou']:>10.4f}{r['val_tta']:>10.4f}{r['epochs']:>8}"
            f"{r['wall_minutes']:>10.1f}"
        )
    if "pretrained" in rows and "scratch" in rows:
        gain = rows["pretrained"]["val_miou"] - rows["scratch"]["val_miou"]
        print(f"pretrained - scratch: {gain:+.4f} val mIoU")
    out = ROOT / "results" / "pretrained_small_data.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"train_images": n, "arms": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
