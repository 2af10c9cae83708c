"""CamVid on a time budget, standard protocol: train (self-configured, or a model you name),
then score the best checkpoint on val, and on a test split kept outside the repository.

    python bench/camvid.py [--budget-minutes 30] [--model reseg] [--test DIR] [--keep DIR]
                           [key=value ...]

Protocol: 11 classes, void ignored, one confusion matrix over the whole split, full 360x480
label resolution (predictions upsampled to it when the run trains smaller); each split is
scored plain and with horizontal-flip TTA (`val`, `val_tta`). The wall time is that of
`pixelseg train` (set-up, training, final evaluation and report), measured around it. With a
GPU the same command runs the GPU budget (pass --budget-minutes 10). Select configurations
on val; --test only reports. Writes bench/results/camvid-<name>.json; --keep DIR trains into
DIR and keeps the run (for `pixelseg robustness`). --model NAME plans around that model
(`pixelseg plan model.name=NAME --save`, then `pixelseg train --config`), within the budget.

A final pass (`data.train_split=train+val`) trains on val; its val scores are then marked as
not held out (`val_held_out` in the JSON) and only --test measures it.

--test DIR is a CamVid folder in the same layout with a `test/` + `testannot/` split (or
`val/` + `valannot/`, scored as the test split).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelseg.analysis.evaluation import evaluate_run
from pixelseg.data.pipeline import val_is_trained_on
from pixelseg.runs import RunFolder

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "camvid"


def score(run: Path, data: Path, split: str, tta: bool) -> dict:
    result = evaluate_run(run, data, split=split, tta=tta, gap=False, progress=False)
    scores = result.result.scores
    return {
        "mean_iou": scores.mean_iou,
        "pixel_accuracy": scores.pixel_accuracy,
        "per_class_iou": scores.per_class.iou,
    }


def run_or_exit(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(done.stdout[-3000:])
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        sys.exit(done.returncode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--budget-minutes", type=float, default=30.0)
    ap.add_argument("--model", help="train this model (the plan still sizes it)")
    ap.add_argument("--test", help="a CamVid folder holding a held-out test split")
    ap.add_argument("--keep", help="train into this folder and keep the run (default: a temp one)")
    ap.add_argument("--name", default=None)
    ap.add_argument("overrides", nargs="*", help="key=value passed to pixelseg train")
    args = ap.parse_args()
    name = args.name or f"{args.model or 'plan'}-{args.budget_minutes:g}min"
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        if args.keep and (Path(tmp) / name).exists():
            sys.exit(f"{Path(tmp) / name} exists: pick another --name or --keep folder")
        t0 = time.time()
        cmd = [sys.executable, "-m", "pixelseg", "train", "--data", args.data, "--quiet"]
        budget = args.budget_minutes
        if args.model:
            # `train model.name=X` would be the user's own choice (no plan); `plan model.name=X`
            # sizes the resolution, batch and schedule around X. The plan's minutes come out
            # of the budget, so the whole protocol stays within it.
            planned = Path(scratch) / "plan.yaml"
            plan = [sys.executable, "-m", "pixelseg", "plan", "--data", args.data]
            plan += ["--budget-minutes", str(budget), "--save", str(planned)]
            run_or_exit(plan + [f"model.name={args.model}", *args.overrides])
            budget -= (time.time() - t0) / 60
            cmd += ["--config", str(planned)]
        cmd += ["--budget-minutes", f"{budget:.2f}", "--out-dir", tmp, "--name", name]
        cmd += args.overrides
        run_or_exit(cmd)
        wall = time.time() - t0
        run = Path(tmp) / name
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        # a final pass (data.train_split=train+val) trained on val, and kept its last epoch
        held_out = not val_is_trained_on(RunFolder(run).config().data)
        best = max(rows, key=lambda r: r["val_miou"]) if held_out else rows[-1]
        result = {
            "name": name,
            "command": " ".join(cmd[1:]),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
            + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"),
            "budget_minutes": args.budget_minutes,
            "wall_minutes": round(wall / 60, 2),
            "within_10_percent": abs(wall / 60 - args.budget_minutes) <= 0.1 * args.budget_minutes,
            "epochs": len(rows),
            "best_epoch": best["epoch"],
            "config": (run / "config.yaml").read_text(),
            "val_held_out": held_out,
            "val": score(run, Path(args.data), "val", tta=False),
            "val_tta": score(run, Path(args.data), "val", tta=True),
        }
        if args.test:
            test = Path(args.test)
            split = "test" if (test / "test").is_dir() else "val"
            result["test"] = score(run, test, split, tta=False)
            result["test_tta"] = score(run, test, split, tta=True)
    line = (
        f"{name}: val mIoU {result['val']['mean_iou']:.4f}"
        f" (flip TTA {result['val_tta']['mean_iou']:.4f})"
        + ("" if result["val_held_out"] else " on val it trained on")
        + (f", test mIoU {result['test']['mean_iou']:.4f}" if "test" in result else "")
        + f"; {result['epochs']} epochs, wall {result['wall_minutes']:.1f} of "
        f"{args.budget_minutes:g} min"
    )
    print(line)
    out = ROOT / "results" / f"camvid-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
