"""The walk of `pixelseg train` (issue 32's measure): from `cli/train.py`'s `run` (the command
itself, not the argument parser that every command shares) to the first training epoch, each
pixelseg file entered by a call or a return at call depth <= D below `run`. A re-entry is
entering a file that the walk already left.

    python bench/train_walk.py DATA [--depth 3]

DATA: any small dataset (a mask folder of a few images is enough); training stops before its
first epoch. Prints the files, moves and re-entries, and with --sequence the walk itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pixelseg
from pixelseg.cli.main import main as pixelseg_main

SRC = str(Path(pixelseg.__file__).parent)
FIRST_EPOCH = ("train_one_epoch", "run_epoch")


class _FirstEpoch(Exception):
    pass


def trace(data: str, depth_limit: int) -> list[str]:
    walk: list[str] = []
    state = {"active": False, "depth": 0}

    def short(filename: str) -> str:
        return filename[len(SRC) + 1 :]

    def caller_file(frame) -> str | None:
        b = frame.f_back
        while b is not None and not b.f_code.co_filename.startswith(SRC):
            b = b.f_back
        return None if b is None else b.f_code.co_filename

    def profile(frame, event, arg):
        filename = frame.f_code.co_filename
        if not filename.startswith(SRC):
            return
        if not state["active"]:
            if (
                event == "call"
                and frame.f_code.co_name == "run"
                and filename.endswith("cli/train.py")
            ):
                state["active"] = True
                walk.append(short(filename))
            return
        if event == "call":
            state["depth"] += 1
            if frame.f_code.co_name in FIRST_EPOCH:
                raise _FirstEpoch
            if state["depth"] <= depth_limit:
                walk.append(short(filename))
        elif event == "return":
            state["depth"] -= 1
            back = caller_file(frame)
            if 0 <= state["depth"] < depth_limit and back is not None:
                walk.append(short(back))

    out = tempfile.mkdtemp()
    sys.setprofile(profile)
    try:
        pixelseg_main(["train", "--data", data, "--quiet", "--out-dir", out, "train.epochs=1"])
    except _FirstEpoch:
        pass
    finally:
        sys.setprofile(None)
    return [f for i, f in enumerate(walk) if i == 0 or walk[i - 1] != f]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--sequence", action="store_true", help="print the walk itself")
    args = ap.parse_args()
    seq = trace(args.data, args.depth)
    left: set[str] = set()
    reentries = 0
    for i, f in enumerate(seq):
        if i:
            left.add(seq[i - 1])
        reentries += f in left
    if args.sequence:
        print(" > ".join(seq))
    print(
        f"depth <= {args.depth}: {len(set(seq))} files, {len(seq) - 1} moves, "
        f"{reentries} re-entries"
    )


if __name__ == "__main__":
    main()
