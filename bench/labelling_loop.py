"""A simulated labelling loop on CamVid: does `pixelseg rank` pick better images to label than
chance?

    python bench/labelling_loop.py [--data ../shared/datasets/camvid] [--seeds 0,1]
                                   [--start 40] [--add 40] [--rounds 3] [--samples 2400]
                                   [--arms rank,random[,diverse]]

Per seed: label `--start` random train images and train; then, for `--rounds` rounds, add
`--add` more images, chosen by `rank_images` from the rest of train with the previous round's
model (arm "rank"), at random (arm "random") or by diversity alone (arm "diverse", a greedy
k-center over the same layout descriptors), and train again from scratch. Every training
uses the same recipe and budget, whatever the number of labelled images: lightseg 32 wide over
ImageNet-pretrained Lite0 at 180x240, batch 8, `--samples` images seen in epochs of at least
240 images (`train.images_per_epoch`; epochs rounded up), so a round differs from another only
in which images are labelled. Scored on val (best epoch). 14 trainings with the defaults. Writes
bench/results/labelling_loop.json (labelling_loop_ARMS.json for other arms).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pixelseg.analysis.acquisition import diverse_order, layout_descriptor
from pixelseg.data.imageio import read_image
from pixelseg.deploy.predict import load
from pixelseg.workflows.rank import rank_images

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "camvid"
RECIPE = [
    "--model",
    "lightseg",
    "model.encoder=efficientnet_lite0",
    "model.width=32",
    "data.resize=[180, 240]",
    "train.batch_size=8",
    "train.class_weights=sqrt",
]
# An epoch is at least this many images (a small labelled set repeated), so that 40 labelled
# images do not mean 60 validations of the 101 val images per training.
EPOCH_IMAGES = 240


def labelled_folder(data: Path, names: list[str], out: Path) -> Path:
    """A CamVid folder of symlinks: the chosen train images and all of val."""
    for split in ("train", "trainannot", "val", "valannot"):
        (out / split).mkdir(parents=True)
    for name in names:
        for split in ("train", "trainannot"):
            (out / split / name).symlink_to(data / split / name)
    for split in ("val", "valannot"):
        for p in (data / split).iterdir():
            (out / split / p.name).symlink_to(p)
    return out


def train(folder: Path, runs: Path, name: str, n: int, samples: int) -> tuple[Path, float]:
    per_epoch = max(n, EPOCH_IMAGES)
    epochs = max(1, math.ceil(samples / per_epoch))
    cmd = [
        sys.executable,
        "-m",
        "pixelseg",
        "train",
        "--quiet",
        "--data",
        str(folder),
        "--out-dir",
        str(runs),
        "--name",
        name,
        "--epochs",
        str(epochs),
        f"train.images_per_epoch={per_epoch}",
        *RECIPE,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"training {name} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    result = json.loads((runs / name / "eval" / "val.json").read_text())
    return runs / name, float(result["mean_iou"])


def k_center(model: Path, paths: list[str], k: int) -> list[str]:
    """Arm "diverse": a plain greedy k-center over the layout descriptors `rank` keeps the top
    K apart with, every image equally uncertain (diversity alone, a cold-start baseline)."""
    predictor = load(model, "cpu")
    descriptors = np.stack(
        [layout_descriptor(predictor.predict_proba(read_image(p))) for p in paths]
    )
    return [paths[i] for i in diverse_order(np.ones(len(paths)), descriptors, k)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--start", type=int, default=40)
    p.add_argument("--add", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--samples", type=int, default=2400)
    p.add_argument("--arms", default="rank,random", help="of rank, random, diverse")
    args = p.parse_args()
    arms = args.arms.split(",")
    pool_all = sorted(q.name for q in (args.data / "train").glob("*.png"))
    table: dict[str, dict[str, list[float]]] = {arm: {} for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in [int(s) for s in args.seeds.split(",")]:
            rng = np.random.default_rng(seed)
            start = sorted(rng.choice(pool_all, args.start, replace=False).tolist())
            folder = labelled_folder(args.data, start, tmp / f"s{seed}-r0")
            run0, miou0 = train(folder, tmp / "runs", f"s{seed}-r0", len(start), args.samples)
            print(f"seed {seed} round 0: {len(start)} images, val mIoU {miou0:.4f}", flush=True)
            for arm in arms:
                table[arm].setdefault("0", []).append(miou0)
                labelled, model = list(start), run0
                arm_rng = np.random.default_rng(1000 + seed)
                for r in range(1, args.rounds + 1):
                    rest = [n for n in pool_all if n not in set(labelled)]
                    if arm == "rank":
                        picked = rank_images(
                            model,
                            [str(args.data / "train" / n) for n in rest],
                            tmp / f"rank-s{seed}-r{r}",
                            top=args.add,
                            progress=False,
                        ).top
                        new = [Path(x).name for x in picked]
                    elif arm == "diverse":
                        paths = [str(args.data / "train" / n) for n in rest]
                        new = [Path(x).name for x in k_center(model, paths, args.add)]
                    else:
                        new = arm_rng.choice(rest, args.add, replace=False).tolist()
                    labelled += new
                    name = f"s{seed}-{arm}-r{r}"
                    folder = labelled_folder(args.data, labelled, tmp / name)
                    model, miou = train(folder, tmp / "runs", name, len(labelled), args.samples)
                    table[arm].setdefault(str(r), []).append(miou)
                    print(
                        f"seed {seed} {arm} round {r}: {len(labelled)} images, val mIoU {miou:.4f}",
                        flush=True,
                    )
    print("\n| round | labelled | " + " | ".join(f"{a} (mean)" for a in arms) + " |")
    print("|---|---|" + "---|" * len(arms))
    for r in range(args.rounds + 1):
        means = " | ".join(f"{np.mean(table[a][str(r)]):.4f}" for a in arms)
        print(f"| {r} | {args.start + r * args.add} | {means} |")
    name = "" if arms == ["rank", "random"] else "_" + "-".join(arms)
    out = ROOT / "results" / f"labelling_loop{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **table}, indent=1)
    )


if __name__ == "__main__":
    main()
