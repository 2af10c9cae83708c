"""Does tuning pay? A study on the built-in scenes against the default configuration, both at
the same per-trial training budget (the same epochs of the same images).

    python bench/tune_scenes.py                        # 20 trials x 8 epochs, ~15-25 min on 2 cores
    python bench/tune_scenes.py --space local          # the same, around the default config
    python bench/tune_scenes.py --trials 8 --epochs 2 --train 100   # a quick look (no signal)

Scenes are generated into a temporary folder (64x64 by default, 400 train / 40 val). The budget
must let the default learn something: at 4 epochs of 200 images every configuration, default
or tuned, scores 0.10-0.15 mIoU (little more than background), and a "win" is noise. Reported:
the default configuration's val mIoU (seed 0), the study's best trial (seed 0, the maximum of
many noisy runs, so optimistic), and both configurations trained again with seed 1, which is
the fair comparison. Prints a table and writes JSON to bench/results/tune_scenes[_SPACE].json.
"""

from __future__ import annotations

import os

# On a shared machine, spinning OpenMP threads stall whenever another process holds a core
# (measured 7x slower steps with 2 threads); passive waiting costs nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from pixelseg.config import load_config  # noqa: E402
from pixelseg.data.scenes import write_scenes  # noqa: E402
from pixelseg.engine.trainer import train  # noqa: E402
from pixelseg.files import atomic_write_text  # noqa: E402
from pixelseg.tuning.options import TuneOptions  # noqa: E402
from pixelseg.tuning.space import LOCAL, load_space  # noqa: E402
from pixelseg.workflows.tune import run_study  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def quiet(*_a, **_k) -> None:
    pass


def train_once(config: str | None, overrides: list[str], out: Path, name: str) -> dict:
    cfg = load_config(config, [*overrides, f"out_dir={out}", f"name={name}"])
    t = time.time()
    result = train(cfg, progress=False, log=quiet)
    return {
        "model": cfg.model.name,
        "val_miou": result.best_miou,
        "seconds": time.time() - t,
        "seed": cfg.train.seed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=8, help="epochs per trial and per baseline run")
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--val", type=int, default=40)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--minutes-per-trial", type=float, default=2.0)
    p.add_argument(
        "--space", help="search space YAML, or 'local' (default: the built-in broad space)"
    )
    p.add_argument("--out", help="keep the data, runs and study here (default: a temp folder)")
    args = p.parse_args()

    t0, load0 = time.time(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data = root / "scenes"
        if not (data / "classes.yaml").exists():
            write_scenes(
                data,
                {"train": args.train, "val": args.val},
                size=(args.size, args.size),
                progress=False,
            )
        budget = [f"data.root={data}", f"train.epochs={args.epochs}"]
        runs = root / "runs"
        print(f"default configuration, {args.epochs} epochs ...", flush=True)
        default0 = train_once(None, budget, runs, "default-seed0")
        print(f"  val mIoU {default0['val_miou']:.4f} ({default0['seconds']:.0f} s)", flush=True)

        opts = TuneOptions(
            data=str(data),
            trials=args.trials,
            out=str(root / "tune"),
            study="scenes",
            space=LOCAL if args.space == LOCAL else load_space(args.space),
            epochs_per_trial=args.epochs,
            minutes_per_trial=args.minutes_per_trial,
        )
        t_study = time.time()
        summary = run_study(opts, log=lambda *a: print(*a, flush=True))
        study_s = time.time() - t_study
        best_yaml = opts.study_dir / "best.yaml"
        if summary.best_number is None:
            raise SystemExit("no trial completed; see the trial lines above")

        print("both configurations again with seed 1 ...", flush=True)
        seed1 = [*budget, "train.seed=1"]
        default1 = train_once(None, seed1, runs, "default-seed1")
        tuned1 = train_once(str(best_yaml), seed1, runs, "tuned-seed1")
        best_cfg = load_config(best_yaml)
        rows = (opts.study_dir / "trials.csv").read_text()

    result = {
        "space": args.space or "default",
        "trials": args.trials,
        "epochs_per_trial": args.epochs,
        "train_images": args.train,
        "val_images": args.val,
        "size": args.size,
        "counts": summary.counts,
        "default_seed0": default0,
        "default_seed1": default1,
        "tuned_best_trial": {"number": summary.best_number, "val_miou": summary.best_value},
        "tuned_seed1": tuned1,
        "best_config": {
            "model": best_cfg.model.name,
            "knobs": best_cfg.model.knobs,
            "lr": best_cfg.train.lr,
            "weight_decay": best_cfg.train.weight_decay,
            "batch_size": best_cfg.train.batch_size,
            "augment": best_cfg.to_dict()["augment"],
        },
        "study_seconds": study_s,
        "total_seconds": time.time() - t0,
        "trials_csv": rows,
        "torch": torch.__version__,
        "cpu": platform.machine(),
        "threads": torch.get_num_threads(),
        "load_avg_1m": [load0, os.getloadavg()[0]],
    }
    print(
        f"\n| configuration | val mIoU seed 0 | val mIoU seed 1 |\n|---|---|---|\n"
        f"| default ({default0['model']}) | {default0['val_miou']:.4f} | "
        f"{default1['val_miou']:.4f} |\n"
        f"| tuned ({tuned1['model']}, best of {args.trials} trials) | "
        f"{summary.best_value:.4f} (selected) | {tuned1['val_miou']:.4f} |"
    )
    print(
        f"study {study_s / 60:.1f} min, total {result['total_seconds'] / 60:.1f} min; "
        f"trials {summary.counts}"
    )
    path = RESULTS / f"tune_scenes{'_' + Path(args.space).stem if args.space else ''}.json"
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
