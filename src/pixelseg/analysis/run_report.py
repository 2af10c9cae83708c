"""Gather what a run folder holds (history, eval, robustness, config, model summary) and
render its ``report.html``. Called after training, eval and robustness, and by
``pixelseg report RUN``; each call re-renders with whatever exists by then.

The run's configuration is parsed at most once per call: a caller that holds it (the train
workflow, the demo) passes it in, and only a caller with nothing but the folder
(``pixelseg report RUN``) leaves it to be read from ``config.yaml``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import RunConfig
from ..data.formats import open_split
from ..engine.checkpoint import load_checkpoint
from ..engine.predictor import Predictor
from ..engine.tracking import log_artifacts
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..metrics import ConfusionMatrix
from ..models.summary import summarize
from ..runs import RunFolder
from .evaluation import RunEval, evaluate_run, read_eval, save_eval
from .report import write_report


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_eval(run: RunFolder) -> RunEval | None:
    """The run's saved evaluation (``eval/val.json``, else ``eval/test.json``), if any."""
    for split in ("val", "test"):
        if run.eval_result(split).is_file():
            return read_eval(run.eval_result(split))
    return None


def example_predictions(
    predictor: Predictor, data_root, split: str, data_format: str = "auto", limit: int = 24
) -> list[dict]:
    """Predict up to ``limit`` images of a split, each with its own mIoU (for best/worst)."""
    source = open_split(data_root, split, data_format)
    examples = []
    for i in range(min(limit, len(source))):
        s = source.load(i)
        pred = predictor.predict(s.image)
        cm = ConfusionMatrix(predictor.num_classes)
        cm.update(torch.from_numpy(pred), torch.from_numpy(s.mask))
        examples.append(
            {
                "image": s.image,
                "gt": s.mask,
                "pred": pred,
                "name": s.name,
                "miou": cm.compute().mean_iou,
            }
        )
    return examples


def build_run_report(
    run_dir: str | Path,
    examples_split: str = "val",
    with_examples: bool = True,
    config: RunConfig | None = None,
) -> Path:
    """Render ``run_dir/report.html`` from the run's files. ``config``: the run's configuration
    when the caller holds it (it says where the example images are); None reads the run's
    ``config.yaml``, only if examples are wanted."""
    run = RunFolder(run_dir)
    if not run.metrics.is_file():
        raise PixelsegError(f"{run.path}: not a run folder (no metrics.jsonl)")
    history = [json.loads(x) for x in run.metrics.read_text().splitlines() if x.strip()]
    predictor = Predictor.from_checkpoint(run.path, device="cpu")
    config_text = run.config_file.read_text() if run.has_config() else None
    eval_result = _read_eval(run)
    robustness = _read_json(run.robustness)
    consistency = _read_json(run.consistency)
    examples = None
    if with_examples and config_text:
        try:
            data = (config or run.config()).data
            examples = example_predictions(predictor, data.root, examples_split, data.format)
        except PixelsegError:
            examples = None  # the data moved since training: report without examples
    return write_report(
        run.path,
        history=history,
        class_names=predictor.classes.names,
        class_colours=predictor.classes.colours,
        eval_result=eval_result,
        robustness=robustness,
        consistency=consistency,
        calibration=eval_result.calibration if eval_result else None,
        boundary=eval_result.boundary if eval_result else None,
        summary_text=run.model_summary.read_text() if run.model_summary.is_file() else None,
        config_text=config_text,
        examples=examples,
        title=f"pixelseg run {run.name}",
        filename=run.report.name,
    )


__all__ = ["build_run_report", "evaluate_best", "example_predictions", "finish_run"]


def write_model_summary(run_dir: str | Path, config: RunConfig) -> Path:
    """Save the model's per-layer table (at the training input size of ``config``, the run's
    configuration) in the run."""
    run = RunFolder(run_dir)
    model, _ = load_checkpoint(run.last)
    data = config.data
    size = data.crop_size or data.resize
    if not size:
        source = open_split(data.root, data.train_split, data.format)
        size = list(source.load(0).image.shape[:2]) if len(source) else [256, 256]
    text = f"input size {size[0]}x{size[1]}\n" + summarize(model, tuple(size)).table()
    atomic_write_text(run.model_summary, text)
    return run.model_summary


# Training images scored for the train-vs-val gap after training, evenly spaced: the gap is
# set against a val mIoU from tens to a few hundred images, so a larger train sample does not
# make it surer; a 100k-image dataset is not scored in full again (`pixelseg eval` scores all
# of them). 1000 cost the demo 2-3 s of its 150 for the 1600 scenes' gap.
GAP_MAX_IMAGES = 300


def evaluate_best(run_dir: str | Path, config: RunConfig, progress: bool = False) -> RunEval:
    """Evaluate the run's best checkpoint on the validation split of ``config`` (the run's
    configuration), with the train-vs-val gap, and save it as ``eval/<split>.json``: the
    report's per-class bars, confusion matrix, calibration and boundary sections come from it."""
    data = config.data
    result = evaluate_run(
        run_dir,
        data.root,
        data.val_split,
        data.format,
        progress=progress,
        gap_max_images=GAP_MAX_IMAGES,
    )
    save_eval(result, run_dir)
    return result


def finish_run(
    run_dir: str | Path, log=print, progress: bool = False, config: RunConfig | None = None
) -> Path:
    """After training: evaluate the best checkpoint, save the model summary, render the report.

    ``config``: the configuration the run trained with (``TrainResult.config``); the caller
    has it already, so passing it spares parsing ``config.yaml`` again. None reads it once.
    A run trained again (resumed) is evaluated again: its best checkpoint may have changed.
    """
    config = config or RunFolder(run_dir).config()
    write_model_summary(run_dir, config)
    result = evaluate_best(run_dir, config, progress=progress)
    scores = result.result.scores
    log(
        f"best checkpoint on {result.split}: mIoU {scores.mean_iou:.4f}, pixel accuracy "
        f"{scores.pixel_accuracy:.4f} (details: pixelseg eval {run_dir})"
    )
    report = build_run_report(run_dir, config=config)
    log(f"report: {report}")
    log_artifacts(run_dir, [report])  # to the run's MLflow run, when it tracks to one
    return report
