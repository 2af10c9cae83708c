"""``pixelseg demo``: generate multi-object scenes, train the default CNN, evaluate, predict.

A workflow: each step is another layer's own work (data's scenes, the engine's training,
analysis's evaluation and report, deploy's predictions), run in turn with the demo's recipe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..analysis.evaluation import RunEval, format_eval, read_eval
from ..analysis.run_report import finish_run
from ..config import load_config
from ..data.imageio import list_images
from ..data.scenes import write_scenes
from ..deploy.predict_images import predict_images
from ..engine.trainer import train
from ..runs import RunFolder

# Sized so the whole demo runs in well under 2.5 minutes on 2 CPU cores (bench/demo_time.py).
# Measured on these scenes (docs/results.md#demo): fresh samples teach more than repeated epochs
# of augmented ones, so 1600 scenes rather than 800 seen 40 times; the scenes already vary
# rotation, size and colour, so augmentation is flips plus a random 56x56 crop of each 64x64
# scene, which costs 0.77 of a whole scene and lets 10 epochs fit where 8 whole ones did (val
# 0.912 against 0.900, about the same time); a high lr (6e-3, half an epoch of warm-up, cosine) gets
# through the plateau before the shape classes separate, and Dice lifts the small shape classes
# that mIoU weighs equally.
DEMO_COUNTS = {"train": 1600, "val": 60, "test": 8}
DEMO_SIZE = (64, 64)
DEMO_OVERRIDES = [
    "model.name=unet",
    "model.width=16",
    "model.depth=4",
    "train.epochs=10",
    "train.batch_size=8",
    "train.lr=6e-3",
    "train.warmup_epochs=0.5",
    "train.schedule=cosine",
    "train.loss=ce+dice",
    "data.cache=true",
    "data.crop_size=[56, 56]",
    "augment.rotation=0",
    "augment.scale=[1.0, 1.0]",
    "augment.hflip=0.5",
    "augment.vflip=0.5",
    "augment.brightness=0",
    "augment.contrast=0",
    "augment.saturation=0",
]


@dataclass
class DemoResult:
    """Where a demo put its data, run, evaluation, report and predictions, and how it did."""

    data: Path
    run_dir: Path
    eval_path: Path
    metrics: RunEval  # the evaluation of the best checkpoint on the validation scenes
    report: Path
    predictions: Path
    predicted: int  # held-out scenes segmented
    seconds: float
    phases: dict[str, float]  # where the time went: phase -> seconds

    def time_breakdown(self) -> str:
        return "  ".join(f"{name} {sec:.0f}s" for name, sec in self.phases.items())

    def summary(self) -> str:
        miou = self.metrics.result.scores.mean_iou
        return "\n".join(
            [
                f"demo finished in {self.seconds:.0f}s: val mIoU {miou:.4f}",
                f"  time         {self.time_breakdown()}",
                f"  data         {self.data}",
                f"  run          {self.run_dir}  (config.yaml, metrics.jsonl, checkpoints/)",
                f"  evaluation   {self.eval_path}",
                f"  report       {self.report}  (open it in a browser)",
                f"  predictions  {self.predictions}  ({self.predicted} held-out scenes: "
                "*_mask.png, *_overlay.png)",
            ]
        )


def demo(
    out_dir: str | Path = "pixelseg-demo",
    epochs: int | None = None,
    size: tuple[int, int] = DEMO_SIZE,
    train_images: int = DEMO_COUNTS["train"],
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """The whole pipeline on built-in scenes: generate them (once per size and count), train
    a small U-Net, evaluate its best checkpoint, build the report, segment the test scenes.

    >>> result = pixelseg.demo("demo", epochs=2, train_images=32)   # doctest: +SKIP
    >>> print(result.summary())                                      # doctest: +SKIP
    """
    t0 = time.time()
    clock = _PhaseClock()
    out = Path(out_dir)
    counts = {**DEMO_COUNTS, "train": train_images}
    # The scenes are deterministic: generate once per size and count.
    data = out / f"data-{size[0]}x{size[1]}-{counts['train']}"
    if not (data / "classes.yaml").is_file():
        log(f"generating {sum(counts.values())} scenes ({size[0]}x{size[1]}) in {data}")
        write_scenes(data, counts, size, seed=0, progress=progress)
    clock.lap("scenes")
    run_overrides = DEMO_OVERRIDES + [f"data.root={data}", f"out_dir={out / 'runs'}"]
    if epochs:
        run_overrides.append(f"train.epochs={epochs}")
    cfg = load_config(overrides=run_overrides + list(overrides))
    result = train(cfg, progress=progress)
    epochs_seconds = sum(row.get("time_s", 0.0) for row in result.history)
    clock.lap("training")
    clock.split("training", {"set-up": clock.phases["training"] - epochs_seconds})

    log("\nevaluating the best checkpoint on the validation scenes")
    report = finish_run(result.run_dir, log=lambda _: None, progress=progress, config=cfg)
    run = RunFolder(result.run_dir)
    eval_path = run.eval_result("val")
    metrics = read_eval(eval_path)
    log(format_eval(metrics))
    clock.lap("evaluation + report")

    pred_dir = run.predictions
    test_images = [str(p) for p in list_images(data / "test" / "images")]
    summary = predict_images(result.run_dir, test_images, pred_dir, progress=progress)
    clock.lap("predictions")
    return DemoResult(
        data=data,
        run_dir=Path(result.run_dir),
        eval_path=eval_path,
        metrics=metrics,
        report=report,
        predictions=pred_dir,
        predicted=len(summary.records),
        seconds=time.time() - t0,
        phases=clock.phases,
    )


class _PhaseClock:
    """Seconds per phase of the demo, in order (a phase may be split into named parts)."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.time()

    def lap(self, name: str) -> None:
        now = time.time()
        self.phases[name] = now - self._last
        self._last = now

    def split(self, name: str, parts: dict[str, float]) -> None:
        """Move ``parts`` out of phase ``name`` (kept in order, just before it)."""
        rest = self.phases.pop(name) - sum(parts.values())
        self.phases.update(parts)
        self.phases[name] = rest
