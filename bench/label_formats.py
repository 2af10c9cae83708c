"""Round trips through the annotation formats: CamVid's label maps written as LabelMe, YOLO
and COCO polygons (``pixelseg convert``) and read back, and the share of labelled pixels that
come back with the same class.

    python bench/label_formats.py [--data ../shared/datasets/camvid] [--split val]

Also times each conversion. Target (issue 31): at least 98% of labelled pixels kept at
360x480. Writes bench/results/label_formats.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.convert import convert_dataset
from pixelseg.data.formats import open_split

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "camvid"
FORMATS = ("labelme", "yolo", "coco")


def kept_share(src, back, split: str, shift: int) -> tuple[float, int]:
    a, b = open_split(src, split), open_split(back, split)
    kept = total = 0
    for i in range(len(a)):
        want, got = a[i].mask, b[i].mask
        labelled = want != IGNORE_INDEX
        total += int(labelled.sum())
        kept += int((got[labelled] == want[labelled] + shift).sum())
    return kept / max(total, 1), total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--split", default="val")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            out, back = Path(tmp) / fmt, Path(tmp) / f"{fmt}-back"
            t0 = time.time()
            convert_dataset(args.data, out, fmt, splits=[args.split], progress=False)
            t1 = time.time()
            convert_dataset(out, back, "mask-folder", progress=False)
            share, pixels = kept_share(args.data, back, args.split, 1 if fmt == "coco" else 0)
            results[fmt] = {
                "kept": share,
                "labelled_pixels": pixels,
                "write_s": round(t1 - t0, 1),
                "read_back_s": round(time.time() - t1, 1),
            }
            print(f"{fmt}: {100 * share:.3f}% of {pixels:,} labelled pixels kept", flush=True)
    print("\n| format | labelled pixels kept | write (s) | read back (s) |\n|---|---|---|---|")
    for fmt, r in results.items():
        print(f"| {fmt} | {100 * r['kept']:.3f}% | {r['write_s']} | {r['read_back_s']} |")
    out = ROOT / "results" / "label_formats.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"data": str(args.data), "split": args.split, **results}, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
