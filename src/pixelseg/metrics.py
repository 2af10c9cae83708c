"""Every segmentation metric from one confusion matrix accumulated over a whole split.

Rows are ground truth, columns are predictions. IGNORE_INDEX pixels are never counted.
mIoU averages the classes present in the ground truth or the prediction (a class that is in
neither has an undefined IoU); ``compute()`` reports which classes were averaged.
"""

from __future__ import annotations

import numpy as np
import torch

from .constants import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulate (prediction, target) pairs; reduce across processes; derive the metrics.

    >>> cm = ConfusionMatrix(3)
    >>> cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    >>> round(cm.compute()["pixel_accuracy"], 3)
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
        idx = target[valid].to(torch.int64) * k + pred[valid].to(torch.int64)
        self.mat += torch.bincount(idx, minlength=k * k).reshape(k, k).to(self.mat.device)

    def all_reduce(self) -> None:
        """Sum the matrices of every process (no-op outside torch.distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.mat)

    def reset(self) -> None:
        self.mat.zero_()

    def compute(self) -> dict:
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
        return {
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
            "mean_iou": mean_iou(m),
            "mean_f1": float(np.mean(f1[present])) if present.any() else 0.0,
            "mean_accuracy": float(np.nanmean(recall)) if (gt > 0).any() else 0.0,
            "classes_averaged": [int(i) for i in np.flatnonzero(present)],
            "per_class": {
                "precision": _nan_to_none(precision),
                "recall": _nan_to_none(recall),
                "iou": _nan_to_none(iou),
                "f1": _nan_to_none(f1),
                "pixels": [int(v) for v in gt],
            },
            "confusion_matrix": m.astype(np.int64).tolist(),
        }


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
