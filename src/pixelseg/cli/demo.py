"""pixelseg demo: generate multi-object scenes, train the default CNN, evaluate, predict."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..analysis.evaluation import format_eval
from ..analysis.run_report import finish_run
from ..config import load_config
from ..data.imageio import list_images
from ..data.scenes import write_scenes
from ..deploy.batch import predict_stream
from ..deploy.predict import load
from ..engine.trainer import train
from ..files import atomic_write_text
from ..runs import RunFolder
from ._common import parse_size

COMMAND = "demo"
HELP = "the whole pipeline on built-in multi-object scenes (about 4 minutes on 2 CPU cores)"
ORDER = 1

# Sized so the whole demo runs in under 5 minutes on a 2-core laptop CPU. The scenes already
# vary rotation, size and colour, so augmentation stays mild: within this budget the model
# underfits, and every step spent on harder samples is a step not spent learning shapes.
# lr 3e-3 (the toolkit's default is the seed's 1e-3) shortens the plateau before the
# shape classes separate; Dice lifts the small shape classes that mIoU weighs equally.
DEMO_COUNTS = {"train": 800, "val": 60, "test": 8}
DEMO_SIZE = (64, 64)
DEMO_OVERRIDES = [
    "model.name=unet",
    "model.width=16",
    "model.depth=4",
    "train.epochs=40",
    "train.batch_size=8",
    "train.lr=3e-3",
    "train.schedule=cosine",
    "train.loss=ce+dice",
    "data.cache=true",
    "augment.rotation=0",
    "augment.scale=[0.9, 1.1]",
    "augment.vflip=0.5",
    "augment.brightness=0.1",
    "augment.contrast=0.1",
    "augment.saturation=0.1",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="pixelseg-demo", help="folder for data, run and predictions")
    p.add_argument("--epochs", type=int, help="override the demo's number of epochs")
    p.add_argument("--size", default=f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]}", help="scene size HxW")
    p.add_argument("--train-images", type=int, default=DEMO_COUNTS["train"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra training overrides")


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    out = Path(args.out)
    progress = not args.quiet
    size = parse_size(args.size)
    counts = {**DEMO_COUNTS, "train": args.train_images}
    # The scenes are deterministic: generate once per size and count.
    data = out / f"data-{size[0]}x{size[1]}-{counts['train']}"
    if not (data / "classes.yaml").is_file():
        print(f"generating {sum(counts.values())} scenes ({size[0]}x{size[1]}) in {data}")
        write_scenes(data, counts, size, seed=0, progress=progress)
    overrides = DEMO_OVERRIDES + [f"data.root={data}", f"out_dir={out / 'runs'}"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    cfg = load_config(overrides=overrides + list(args.overrides))
    result = train(cfg, progress=progress)

    print("\nevaluating the best checkpoint on the validation scenes")
    report = finish_run(result.run_dir, log=lambda _: None, progress=progress)
    run = RunFolder(result.run_dir)
    eval_path = run.eval_result("val")
    metrics = json.loads(eval_path.read_text())
    print(format_eval(metrics))

    predictor = load(result.run_dir)
    pred_dir = run.predictions
    test_images = [str(p) for p in list_images(data / "test" / "images")]
    summary = predict_stream(
        predictor,
        test_images,
        pred_dir,
        name_of=lambda p: Path(p).stem,
        progress=progress,
        keep_records=True,
    )
    records = summary.records
    atomic_write_text(pred_dir / "predictions.json", json.dumps(records, indent=1))

    print(f"\ndemo finished in {time.time() - t0:.0f}s: val mIoU {metrics['mean_iou']:.4f}")
    print(f"  data         {data}")
    print(f"  run          {result.run_dir}  (config.yaml, metrics.jsonl, checkpoints/)")
    print(f"  evaluation   {eval_path}")
    print(f"  report       {report}  (open it in a browser)")
    print(f"  predictions  {pred_dir}  ({len(records)} held-out scenes: *_mask.png, *_overlay.png)")
    return 0
