"""``pixelseg eval``: metrics of a trained run on a split, plus the overfitting gap measured
with the same model on the training split (no augmentation).

Every figure is at the labels' own resolution: a model trained at ``data.resize`` sees each
image resized to that size, and its probabilities are upsampled to the label's size, exactly
as ``pixelseg predict`` segments the image; the labels themselves are never resized."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.formats import open_split
from ..data.pipeline import eval_dataset
from ..data.transforms import Normalizer
from ..engine.checkpoint import load_checkpoint
from ..engine.device import pick_device
from ..engine.evaluate import EvalResult, evaluate
from ..engine.loaders import eval_loader
from ..engine.losses import build_loss
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..runs import RunFolder
from .boundary import BoundaryF1
from .stability import CalibrationAccumulator, CalibrationResult


@dataclass(frozen=True)
class Overfitting:
    """The same model's mIoU and loss on (a sample of) the training split vs the evaluated one."""

    train_images: int
    train_miou: float
    eval_miou: float
    miou_gap: float
    train_loss: float | None
    eval_loss: float | None
    loss_gap: float | None

    @classmethod
    def between(cls, train: SplitEval, evaluated: SplitEval) -> Overfitting:
        tl, el = train.result.loss, evaluated.result.loss
        tm, em = train.result.scores.mean_iou, evaluated.result.scores.mean_iou
        return cls(
            train_images=train.images,
            train_miou=tm,
            eval_miou=em,
            miou_gap=tm - em,
            train_loss=tl,
            eval_loss=el,
            loss_gap=el - tl if tl is not None and el is not None else None,
        )

    def to_dict(self) -> dict:
        return {
            "train_images": self.train_images,
            "train_miou": self.train_miou,
            "eval_miou": self.eval_miou,
            "miou_gap": self.miou_gap,
            "train_loss": self.train_loss,
            "eval_loss": self.eval_loss,
            "loss_gap": self.loss_gap,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Overfitting:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SplitEval:
    """One split scored by ``evaluate_run``: the ``EvalResult``, how many images, and (for the
    evaluated split, not the training sample of the gap) boundary F1 and calibration."""

    result: EvalResult
    images: int
    boundary: dict | None = None  # ``BoundaryF1.compute()``
    calibration: CalibrationResult | None = None


@dataclass(frozen=True)
class RunEval:
    """``evaluate_run``'s result. ``to_dict()`` is its one JSON form, ``eval/<split>.json``
    (``save_eval``); ``from_dict`` reads such a file back (files from older versions lack
    ``resolution`` and ``model_input_size``; those stay ``None`` and are not written back).
    """

    run: str
    checkpoint: str
    epoch: int | None
    split: str
    tta: bool
    tta_scales: list[float]
    class_names: list[str]
    resolution: str | None  # "labels": scored at the labels' own size
    model_input_size: list[int] | None
    result: EvalResult
    images: int
    boundary: dict | None = None
    calibration: CalibrationResult | None = None
    overfitting: Overfitting | None = None

    @property
    def augmented(self) -> bool:
        return bool(self.tta) or list(self.tta_scales) != [1.0]

    def to_dict(self) -> dict:
        d = {
            "run": self.run,
            "checkpoint": self.checkpoint,
            "epoch": self.epoch,
            "split": self.split,
            "tta": self.tta,
            "tta_scales": list(self.tta_scales),
            "class_names": list(self.class_names),
        }
        if self.resolution is not None:
            # Where the metrics were measured: the labels' own size; the model's input size.
            d["resolution"] = self.resolution
            d["model_input_size"] = self.model_input_size
        d.update(self.result.to_dict())
        d["images"] = self.images
        if self.boundary is not None:
            d["boundary"] = self.boundary
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict()
        if self.overfitting is not None:
            d["overfitting"] = self.overfitting.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunEval:
        size = d.get("model_input_size")
        return cls(
            run=d["run"],
            checkpoint=d["checkpoint"],
            epoch=d.get("epoch"),
            split=d["split"],
            tta=bool(d.get("tta", False)),
            tta_scales=[float(v) for v in d.get("tta_scales", [1.0])],
            class_names=list(d["class_names"]),
            resolution=d.get("resolution"),
            model_input_size=list(size) if size else None,
            result=EvalResult.from_dict(d),
            images=int(d.get("images", 0)),
            boundary=d.get("boundary"),
            calibration=CalibrationResult.from_dict(d["calibration"])
            if d.get("calibration")
            else None,
            overfitting=Overfitting.from_dict(d["overfitting"]) if d.get("overfitting") else None,
        )


def evaluate_run(
    run: str | Path,
    data_root: str | Path | None = None,
    split: str = "val",
    data_format: str = "auto",
    batch_size: int = 4,
    tta: bool = False,
    window=None,
    gap: bool = True,
    device: str = "auto",
    progress: bool = True,
    scales: tuple[float, ...] = (1.0,),
    gap_max_images: int | None = None,
) -> RunEval:
    """Evaluate the run's best checkpoint on ``split`` (and on train for the gap).

    ``gap_max_images`` caps the training images scored for the overfitting gap (evenly spaced
    through the split): on a large dataset the gap needs a sample, not another full pass.
    ``data_root`` defaults to the dataset the run trained on.
    """
    data_root = data_root or data_root_of(run)
    dev = pick_device(device)
    model, meta = load_checkpoint(run, map_location=dev)
    normalizer = Normalizer(**(meta.normalization or {}))
    nc = model.pixelseg_spec["num_classes"]
    model_size = tuple(meta.resize) if meta.resize else None
    loss_fn = build_loss("ce", nc).to(dev)

    def run_split(name: str, extras: bool = False, max_images: int | None = None) -> SplitEval:
        source = open_split(data_root, name, data_format)
        if source.classes.num_classes != nc:
            raise PixelsegError(
                f"{data_root}: {source.classes.num_classes} classes, but the model "
                f"was trained on {nc}"
            )
        dataset = eval_dataset(source)  # the labels as they are: no resize
        if max_images is not None and len(dataset) > max_images:
            picks = np.unique(np.linspace(0, len(dataset) - 1, max_images).round().astype(int))
            dataset = torch.utils.data.Subset(dataset, picks.tolist())
        loader = eval_loader(dataset, batch_size)  # batches grouped by image size
        boundary, calibration = BoundaryF1(nc), CalibrationAccumulator()

        def more_metrics(probs, pred, masks):
            # probs: probabilities at the masks' size (evaluate's contract, with or without tta).
            # Boundary quality and calibration need per-pixel maps: accumulate them batch by batch.
            gt = masks.cpu().numpy()
            boundary.update(pred.cpu().numpy(), gt)
            calibration.update(probs.cpu().numpy(), gt)

        res = evaluate(
            model,
            loader,
            normalizer,
            nc,
            dev,
            loss_fn,
            progress=progress,
            desc=f"eval {name}",
            tta=tta,
            scales=tuple(scales),
            window=tuple(window) if window else None,
            on_batch=more_metrics if extras else None,
            reduce_across_processes=False,  # the whole split, in this process
            model_size=model_size,
        )
        if not extras:
            return SplitEval(res, len(dataset))
        return SplitEval(res, len(dataset), boundary.compute(), calibration.compute())

    evaluated = run_split(split, extras=True)
    overfitting = None
    if gap and split != "train":
        try:
            train = run_split("train", max_images=gap_max_images)
        except PixelsegError:
            train = None  # no training split at this data root: no gap to report
        if train is not None:
            overfitting = Overfitting.between(train, evaluated)
    return RunEval(
        run=str(run),
        checkpoint=str(meta.path),
        epoch=meta.epoch,
        split=split,
        tta=tta,
        tta_scales=list(scales),
        class_names=meta.classes["names"],
        resolution="labels",
        model_input_size=list(model_size) if model_size else None,
        result=evaluated.result,
        images=evaluated.images,
        boundary=evaluated.boundary,
        calibration=evaluated.calibration,
        overfitting=overfitting,
    )


def data_root_of(run: str | Path) -> str:
    """The data folder a run trained on (its ``config.yaml``'s ``data.root``)."""
    folder = RunFolder(run)
    if not folder.has_config():
        raise PixelsegError(f"{run}: give --data (no config.yaml in the run to take it from)")
    return folder.config().data.root


def save_eval(result: RunEval, run: str | Path) -> Path:
    """Write ``result`` as the run's ``eval/<split>.json`` (``eval/<split>-tta.json``)."""
    path = RunFolder.containing(run).eval_result(result.split, tta=result.augmented)
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1))
    return path


def read_eval(path: str | Path) -> RunEval:
    """An ``eval/<split>.json`` written by ``save_eval`` (of this or an older version)."""
    path = Path(path)
    try:
        return RunEval.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PixelsegError(f"{path}: not a readable pixelseg eval result ({e})") from None


def format_eval(result: RunEval) -> str:
    """The per-class table and summary lines of an eval result."""
    names = result.class_names
    scores = result.result.scores
    pc = scores.per_class
    lines = [f"{'class':<14} {'precision':>9} {'recall':>7} {'IoU':>7} {'F1':>7} {'pixels':>10}"]

    def f(v):
        return f"{v:.4f}" if v is not None else "   -  "

    for i, name in enumerate(names):
        lines.append(
            f"{name:<14} {f(pc.precision[i]):>9} {f(pc.recall[i]):>7} "
            f"{f(pc.iou[i]):>7} {f(pc.f1[i]):>7} {pc.pixels[i]:>10d}"
        )
    loss = result.result.loss
    lines.append(
        f"pixel accuracy {scores.pixel_accuracy:.4f}   mean IoU {scores.mean_iou:.4f} "
        f"(over {len(scores.classes_averaged)} classes present)   "
        f"mean F1 {scores.mean_f1:.4f}" + (f"   loss {loss:.4f}" if loss is not None else "")
    )
    if result.boundary is not None:
        ece = f"{result.calibration.ece:.4f}" if result.calibration is not None else "-"
        lines.append(
            f"boundary F1 (tolerance {result.boundary['tolerance']}): "
            f"{result.boundary['mean_f1']:.4f}   calibration ECE: {ece}"
        )
    if result.overfitting is not None:
        o = result.overfitting
        lines.append(
            f"overfitting gap: train mIoU {o.train_miou:.4f} vs {result.split} "
            f"{o.eval_miou:.4f} (gap {o.miou_gap:+.4f})"
            + (f"; loss {o.train_loss:.4f} vs {o.eval_loss:.4f}" if o.loss_gap is not None else "")
        )
    note = resolution_note(result.to_dict())
    if note:
        lines.append(note)
    return "\n".join(lines)


def resolution_note(result: dict) -> str | None:
    """One sentence on where an eval result was measured (None for results that predate it)."""
    if result.get("resolution") != "labels":
        return None
    size = result.get("model_input_size")
    if not size:
        return "scored at the labels' own resolution (the model sees each image as it is)"
    return (
        f"scored at the labels' own resolution: the model sees each image resized to "
        f"{size[0]}x{size[1]}, its probabilities upsampled back, as pixelseg predict does"
    )
