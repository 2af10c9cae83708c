"""``pixelseg eval``: metrics of a trained run on a split, plus the overfitting gap measured
with the same model on the training split (no augmentation).

Every figure is at the labels' own resolution: a model trained at ``data.resize`` sees each
image resized to that size, and its probabilities are upsampled to the label's size, exactly
as ``pixelseg predict`` segments the image; the labels themselves are never resized."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.formats import open_split
from ..data.pipeline import eval_dataset
from ..data.transforms import Normalizer
from ..engine.checkpoint import load_checkpoint
from ..engine.device import pick_device
from ..engine.evaluate import evaluate
from ..engine.loaders import eval_loader
from ..engine.losses import build_loss
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..runs import RunFolder
from .boundary import BoundaryF1
from .stability import CalibrationAccumulator


def evaluate_run(
    run: str | Path,
    data_root: str | Path,
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
) -> dict:
    """Evaluate the run's best checkpoint on ``split`` (and on train for the gap).

    ``gap_max_images`` caps the training images scored for the overfitting gap (evenly spaced
    through the split): on a large dataset the gap needs a sample, not another full pass.
    """
    dev = pick_device(device)
    model, meta = load_checkpoint(run, map_location=dev)
    normalizer = Normalizer(**meta.get("normalization", {}))
    nc = model.pixelseg_spec["num_classes"]
    model_size = tuple(meta["resize"]) if meta.get("resize") else None
    loss_fn = build_loss("ce", nc).to(dev)

    def run_split(name: str, extras: bool = False, max_images: int | None = None) -> dict:
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
        res["images"] = len(dataset)
        if extras:
            res["boundary"] = boundary.compute()
            res["calibration"] = calibration.compute().to_dict()
        return res

    result = {
        "run": str(run),
        "checkpoint": meta["_path"],
        "epoch": meta.get("epoch"),
        "split": split,
        "tta": tta,
        "tta_scales": list(scales),
        "class_names": meta["classes"]["names"],
        # Where the metrics were measured: the labels' own size; the model's input size.
        "resolution": "labels",
        "model_input_size": list(model_size) if model_size else None,
    }
    result.update(run_split(split, extras=True))
    if gap and split != "train":
        try:
            train = run_split("train", max_images=gap_max_images)
        except PixelsegError:
            train = None  # no training split at this data root: no gap to report
        if train is not None:
            result["overfitting"] = {
                "train_images": train["images"],
                "train_miou": train["mean_iou"],
                "eval_miou": result["mean_iou"],
                "miou_gap": train["mean_iou"] - result["mean_iou"],
                "train_loss": train["loss"],
                "eval_loss": result["loss"],
                "loss_gap": (result["loss"] - train["loss"])
                if train["loss"] is not None and result["loss"] is not None
                else None,
            }
    return result


def data_root_of(run: str | Path) -> str:
    """The data folder a run trained on (its ``config.yaml``'s ``data.root``)."""
    folder = RunFolder(run)
    if not folder.has_config():
        raise PixelsegError(f"{run}: give --data (no config.yaml in the run to take it from)")
    return folder.config().data.root


def save_eval(result: dict, run: str | Path) -> Path:
    augmented = result.get("tta") or result.get("tta_scales", [1.0]) != [1.0]
    path = RunFolder.containing(run).eval_result(result["split"], tta=bool(augmented))
    atomic_write_text(path, json.dumps(result, indent=1))
    return path


def format_eval(result: dict) -> str:
    names = result["class_names"]
    pc = result["per_class"]
    lines = [f"{'class':<14} {'precision':>9} {'recall':>7} {'IoU':>7} {'F1':>7} {'pixels':>10}"]

    def f(v):
        return f"{v:.4f}" if v is not None else "   -  "

    for i, name in enumerate(names):
        lines.append(
            f"{name:<14} {f(pc['precision'][i]):>9} {f(pc['recall'][i]):>7} "
            f"{f(pc['iou'][i]):>7} {f(pc['f1'][i]):>7} {pc['pixels'][i]:>10d}"
        )
    lines.append(
        f"pixel accuracy {result['pixel_accuracy']:.4f}   mean IoU {result['mean_iou']:.4f} "
        f"(over {len(result['classes_averaged'])} classes present)   "
        f"mean F1 {result['mean_f1']:.4f}"
        + (f"   loss {result['loss']:.4f}" if result.get("loss") is not None else "")
    )
    if "boundary" in result:
        lines.append(
            f"boundary F1 (tolerance {result['boundary']['tolerance']}): "
            f"{result['boundary']['mean_f1']:.4f}   calibration ECE: "
            f"{result['calibration']['ece']:.4f}"
        )
    if "overfitting" in result:
        o = result["overfitting"]
        lines.append(
            f"overfitting gap: train mIoU {o['train_miou']:.4f} vs {result['split']} "
            f"{o['eval_miou']:.4f} (gap {o['miou_gap']:+.4f})"
            + (
                f"; loss {o['train_loss']:.4f} vs {o['eval_loss']:.4f}"
                if o["loss_gap"] is not None
                else ""
            )
        )
    note = resolution_note(result)
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
