"""Label errors found by `pixelseg rank --data`: corrupt a share of a split's masks, rank every
label of the split, and count how many corrupted ones land in the top 10%.

    python bench/label_errors.py --run RUN [--data ../shared/datasets/camvid] [--split val]
                                 [--fraction 0.05] [--seed 0]
    python bench/label_errors.py --split train [--train-samples 3670]

The first form ranks a split that RUN did not train on. The second is the user's situation: it
corrupts the train masks, trains on them (labelling_loop.py's recipe: lightseg 32 wide over
Lite0 at 180x240, `--train-samples` images seen), then ranks the labels it trained on.

Three kinds of corruption, in turn:
    swap    the two largest classes of the mask swapped
    erase   one object (a connected region of 200+ pixels, under a fifth of the image, of a class
            other than the mask's largest) painted with the class around it
    shift   the whole mask moved 5 pixels right and down (what it uncovers ignored)

With --run, RUN should not have trained on the split's labels: on a split it trained on, a
model has partly learnt the labels, right or wrong (the second form measures exactly that).
Target (issue 31): at least 80% of the corrupted masks in the top 10%.
Writes bench/results/label_errors.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from labelling_loop import train
from scipy import ndimage

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.convert import convert_dataset
from pixelseg.data.formats import open_split
from pixelseg.data.imageio import encode_png
from pixelseg.workflows.rank import rank_labels

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "camvid"
KINDS = ("swap", "erase", "shift")
SHIFT = 5


def classes_by_size(mask: np.ndarray) -> list[int]:
    values, counts = np.unique(mask[mask != IGNORE_INDEX], return_counts=True)
    return [int(v) for v in values[np.argsort(-counts)]]


def corrupt(mask: np.ndarray, kind: str) -> np.ndarray:
    out = mask.copy()
    big = classes_by_size(mask)
    if kind == "swap":
        a, b = big[0], big[1]
        out[mask == a], out[mask == b] = b, a
    elif kind == "shift":
        out = np.full_like(mask, IGNORE_INDEX)
        out[SHIFT:, SHIFT:] = mask[:-SHIFT, :-SHIFT]
    else:  # erase an object
        best = None
        for c in big[1:]:
            regions, n = ndimage.label(mask == c)
            sizes = np.bincount(regions.ravel())[1:]
            for r in np.argsort(-sizes):
                if 200 <= sizes[r] < mask.size / 5:
                    if best is None or sizes[r] > best[0]:
                        best = (sizes[r], regions == r + 1)
                    break
        if best is None:
            return corrupt(mask, "swap")
        region = best[1]
        ring = ndimage.binary_dilation(region, iterations=5) & ~region & (mask != IGNORE_INDEX)
        around = classes_by_size(np.where(ring, mask, IGNORE_INDEX))
        out[region] = around[0] if around else IGNORE_INDEX
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", help="a trained run folder or .onnx; without it, train on the split")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--split", default="val")
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-samples", type=int, default=3670, help="without --run: images seen")
    p.add_argument(
        "--keep",
        type=Path,
        help="a new folder to keep the corrupted data, the run and corrupted.json (which mask "
        "got which corruption) in, to study the scores afterwards",
    )
    args = p.parse_args()
    if args.keep is not None and args.keep.exists():
        p.error(f"--keep {args.keep}: already exists")
    if args.run is None and args.split == "val":
        p.error("without --run the model trains on --split and validates on val: use --split train")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        splits = [args.split] if args.run else [args.split, "val"]
        convert_dataset(args.data, data, "mask-folder", splits=splits, progress=False)
        source = open_split(data, args.split)
        n = len(source)
        rng = np.random.default_rng(args.seed)
        chosen = rng.choice(n, max(1, round(args.fraction * n)), replace=False)
        kind_of = {}
        for j, i in enumerate(sorted(chosen.tolist())):
            kind = KINDS[j % len(KINDS)]
            item = source.items[i]
            mask = corrupt(source.load(i).mask, kind)
            item.mask.write_bytes(encode_png(mask.astype(np.uint8), source.classes.colours))
            kind_of[str(item.image)] = kind
        top = max(1, round(0.10 * n))
        out = Path(tmp) / "ranked"
        run = args.run
        if run is None:
            run, miou = train(data, Path(tmp) / "runs", "corrupted", n, args.train_samples)
            print(f"trained on the corrupted {args.split} masks: val mIoU {miou:.4f}")
        rank_labels(run, data, args.split, out, top=top, progress=True)
        lines = (out / "ranking.csv").read_text().splitlines()[1:]
        ranked = [line.split(",")[1] for line in lines]
        if args.keep is not None:
            (Path(tmp) / "corrupted.json").write_text(json.dumps(kind_of, indent=1))
            shutil.copytree(tmp, args.keep, symlinks=True)
    found = {k: 0 for k in KINDS}
    total = {k: 0 for k in KINDS}
    ranks = {}
    for image, kind in kind_of.items():
        total[kind] += 1
        ranks[image] = ranked.index(image) + 1
        found[kind] += ranks[image] <= top
    hit = sum(found.values())
    print(f"\n{len(kind_of)} corrupted of {n} {args.split} masks; top 10% = {top} images")
    print("| kind | corrupted | in the top 10% | their ranks |\n|---|---|---|---|")
    for kind in KINDS:
        rk = sorted(r for im, r in ranks.items() if kind_of[im] == kind)
        print(f"| {kind} | {total[kind]} | {found[kind]} | {rk} |")
    print(f"| all | {len(kind_of)} | {hit} ({100 * hit / len(kind_of):.0f}%) | |")
    res = ROOT / "results" / "label_errors.json"
    res.parent.mkdir(exist_ok=True)
    res.write_text(
        json.dumps(
            {
                "run": str(run) if args.run else f"trained on it, {args.train_samples} seen",
                "split": args.split,
                "top": top,
                "found": found,
                "total": total,
                "ranks": ranks,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
