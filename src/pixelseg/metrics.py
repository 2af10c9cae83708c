"""Every segmentation metric from one confusion matrix accumulated over a whole split.

Rows are ground truth, columns are predictions. IGNORE_INDEX pixels are never counted.
mIoU averages the classes present in the ground truth or the prediction (a class that is in
neither has an undefined IoU); ``compute()`` reports which classes were averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .constants import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulate (prediction, target) pairs; reduce across processes; derive the metrics.

    >>> cm = ConfusionMatrix(3)
    >>> cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    >>> round(cm.compute().pixel_accuracy, 3)
    0.667
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: integer tensors of the same shape (any), on the same device."""
        valid = (target != IGNORE_INDEX) & (target >= 0) & (target < self.num_classes)
        k = self.num_classes
        # Invalid pixels go to an extra bin, dropped after counting: no boolean indexing, so
        # no host sync on CUDA (the training loop updates this every step).
        idx = torch.where(valid, target.to(torch.int64) * k + pred.to(torch.int64), k * k)
        counts = torch.bincount(idx.flatten(), minlength=k * k + 1)[: k * k]
        self.mat += counts.reshape(k, k).to(self.mat.device)

    def all_reduce(self) -> None:
        """Sum the matrices of every process (no-op outside torch.distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.mat)

    def reset(self) -> None:
        self.mat.zero_()

    def compute(self) -> Scores:
        m = self.mat.double().cpu().numpy()
        tp = np.diag(m)
        gt = m.sum(1)
        pred = m.sum(0)
        total = m.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / pred
            recall = tp / gt
            iou = tp / (gt + pred - tp)
            f1 = 2 * tp / (gt + pred)
        present = (gt + pred) > 0
        return Scores(
            pixel_accuracy=float(tp.sum() / total) if total else 0.0,
            mean_iou=mean_iou(m),
            mean_f1=float(np.mean(f1[present])) if present.any() else 0.0,
            mean_accuracy=float(np.nanmean(recall)) if (gt > 0).any() else 0.0,
            classes_averaged=[int(i) for i in np.flatnonzero(present)],
            per_class=PerClassScores(
                precision=_nan_to_none(precision),
                recall=_nan_to_none(recall),
                iou=_nan_to_none(iou),
                f1=_nan_to_none(f1),
                pixels=[int(v) for v in gt],
            ),
            confusion_matrix=m.astype(np.int64).tolist(),
        )


@dataclass(frozen=True)
class PerClassScores:
    """One value per class; ``None`` where the value is undefined (the class is absent)."""

    precision: list[float | None]
    recall: list[float | None]
    iou: list[float | None]
    f1: list[float | None]
    pixels: list[int]  # ground-truth pixels of each class

    def to_dict(self) -> dict:
        return {
            "precision": list(self.precision),
            "recall": list(self.recall),
            "iou": list(self.iou),
            "f1": list(self.f1),
            "pixels": list(self.pixels),
        }

    @classmethod
    def from_dict(cls, d: dict) -> PerClassScores:
        return cls(
            precision=list(d["precision"]),
            recall=list(d["recall"]),
            iou=list(d["iou"]),
            f1=list(d["f1"]),
            pixels=[int(v) for v in d["pixels"]],
        )


@dataclass(frozen=True)
class Scores:
    """The metrics of one confusion matrix (``ConfusionMatrix.compute()``).

    ``mean_iou`` and ``mean_f1`` average ``classes_averaged``: the classes present in the
    ground truth or the prediction. ``to_dict()`` is the JSON form (that of ``eval/*.json``).

    >>> s = ConfusionMatrix(2).compute()
    >>> Scores.from_dict(s.to_dict()) == s
    True
    """

    pixel_accuracy: float
    mean_iou: float
    mean_f1: float
    mean_accuracy: float
    classes_averaged: list[int]
    per_class: PerClassScores
    confusion_matrix: list[list[int]]  # rows = ground truth, columns = predictions

    def to_dict(self) -> dict:
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_iou": self.mean_iou,
            "mean_f1": self.mean_f1,
            "mean_accuracy": self.mean_accuracy,
            "classes_averaged": list(self.classes_averaged),
            "per_class": self.per_class.to_dict(),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Scores:
        return cls(
            pixel_accuracy=float(d["pixel_accuracy"]),
            mean_iou=float(d["mean_iou"]),
            mean_f1=float(d["mean_f1"]),
            mean_accuracy=float(d["mean_accuracy"]),
            classes_averaged=[int(i) for i in d["classes_averaged"]],
            per_class=PerClassScores.from_dict(d["per_class"]),
            confusion_matrix=[[int(v) for v in row] for row in d["confusion_matrix"]],
        )


def mean_iou(conf: np.ndarray) -> float:
    """mIoU of a (C, C) confusion matrix (rows = ground truth) over the classes present in the
    ground truth or the prediction; 0.0 when no pixel was counted.

    >>> mean_iou(np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0]]))  # class 2 absent: (2/3 + 1/2) / 2
    0.5833333333333333
    """
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    if not present.any():
        return 0.0
    return float((tp[present] / union[present]).mean())


def _nan_to_none(a: np.ndarray) -> list[float | None]:
    """JSON has no NaN: undefined per-class values (class absent) become null."""
    return [None if np.isnan(v) else float(v) for v in a]
