"""Boundary F1 per class (Csurka et al., "What is a good evaluation measure for semantic
segmentation?", BMVC 2013): how well predicted class contours match the true ones.

Boundary pixels of class c are pixels of class c with a 4-neighbour of another *labelled*
class. The image frame is not a boundary, and neither is a contour against ``IGNORE_INDEX``
(void pixels are copied into the prediction first, so both maps treat them alike): nothing is
known about the true contour there.

A predicted boundary pixel is a match when a true boundary pixel of the same class lies within
the tolerance (Euclidean, via ``scipy.ndimage.distance_transform_edt``), and vice versa:

    precision_c = matched predicted boundary pixels / predicted boundary pixels
    recall_c    = matched true boundary pixels / true boundary pixels
    F1_c        = 2 P R / (P + R)

Counts are pooled over the split (so large images weigh more, as in the confusion-matrix
metrics). ``compute()`` also gives Csurka's per-image variant, ``f1_per_image``: F1 computed per
image and class, averaged over the images where the class has a boundary in either map.

Example::

    acc = BoundaryF1(num_classes=11, tolerance=2)
    for pred, gt in pairs:
        acc.update(pred, gt)
    scores = acc.compute()   # {"precision": [...], "recall": [...], "f1": [...], "mean_f1": ...}
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..constants import IGNORE_INDEX


def boundary_pixels(labels: np.ndarray, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Boolean (H, W): labelled pixels with a 4-neighbour of a different labelled class."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    valid = labels != ignore_index
    # Vertical and horizontal neighbour pairs that differ, both sides labelled.
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        differ = (labels[a] != labels[b]) & valid[a] & valid[b]
        edge[a] |= differ
        edge[b] |= differ
    return edge


class BoundaryF1:
    """Accumulates boundary precision / recall / F1 per class over a split.

    tolerance: match distance in pixels (inclusive). tolerance_fraction: if given, the
    distance is instead this fraction of each image's diagonal (Csurka et al. use 0.0075).
    """

    def __init__(
        self,
        num_classes: int,
        tolerance: float = 2.0,
        tolerance_fraction: float | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.num_classes = num_classes
        self.tolerance = tolerance
        self.tolerance_fraction = tolerance_fraction
        self.ignore_index = ignore_index
        self.pred_total = np.zeros(num_classes, dtype=np.int64)
        self.pred_matched = np.zeros(num_classes, dtype=np.int64)
        self.gt_total = np.zeros(num_classes, dtype=np.int64)
        self.gt_matched = np.zeros(num_classes, dtype=np.int64)
        self.image_f1_sum = np.zeros(num_classes, dtype=np.float64)
        self.image_count = np.zeros(num_classes, dtype=np.int64)

    def _tolerance(self, shape: tuple[int, int]) -> float:
        if self.tolerance_fraction is not None:
            return self.tolerance_fraction * math.hypot(*shape)
        return float(self.tolerance)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: ``pred`` and ``gt`` are (H, W) class maps (or (B, H, W) batches)."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ")
        if pred.ndim == 3:
            for p, g in zip(pred, gt):
                self.update(p, g)
            return
        pred = np.where(gt == self.ignore_index, self.ignore_index, pred)
        tol = self._tolerance(gt.shape)
        pred_edge = boundary_pixels(pred, self.ignore_index)
        gt_edge = boundary_pixels(gt, self.ignore_index)
        classes = np.union1d(np.unique(pred[pred_edge]), np.unique(gt[gt_edge]))
        for c in classes:
            c = int(c)
            if not 0 <= c < self.num_classes:
                continue
            bp = pred_edge & (pred == c)
            bg = gt_edge & (gt == c)
            n_p, n_g = int(bp.sum()), int(bg.sum())
            # Distance from every pixel to the nearest boundary pixel of the other map; an
            # empty boundary has no near pixels (EDT of an all-ones map would be meaningless).
            mp = int((ndimage.distance_transform_edt(~bg)[bp] <= tol).sum()) if n_g else 0
            mg = int((ndimage.distance_transform_edt(~bp)[bg] <= tol).sum()) if n_p else 0
            self.pred_total[c] += n_p
            self.pred_matched[c] += mp
            self.gt_total[c] += n_g
            self.gt_matched[c] += mg
            self.image_f1_sum[c] += _f1(_ratio(mp, n_p), _ratio(mg, n_g))
            self.image_count[c] += 1

    def compute(self) -> dict:
        """Per-class lists (None where the class has no boundary in either map, over the whole
        split) and their means over the classes that have one.

        Keys: precision, recall, f1, f1_per_image (lists of length num_classes), mean_precision,
        mean_recall, mean_f1, mean_f1_per_image, classes_averaged, tolerance (description).
        A class with true but no predicted boundary has precision 0 (nothing found), and one
        with predicted but no true boundary has recall 0, so both get F1 0.
        """
        precision, recall, f1, per_image = [], [], [], []
        for c in range(self.num_classes):
            if self.pred_total[c] + self.gt_total[c] == 0:
                precision.append(None)
                recall.append(None)
                f1.append(None)
                per_image.append(None)
                continue
            p = _ratio(self.pred_matched[c], self.pred_total[c])
            r = _ratio(self.gt_matched[c], self.gt_total[c])
            precision.append(p)
            recall.append(r)
            f1.append(_f1(p, r))
            per_image.append(float(self.image_f1_sum[c] / self.image_count[c]))
        present = [c for c in range(self.num_classes) if f1[c] is not None]

        def mean(xs: list) -> float | None:
            vals = [xs[c] for c in present]
            return float(np.mean(vals)) if vals else None

        tol = (
            f"{self.tolerance_fraction:g} of the image diagonal"
            if self.tolerance_fraction is not None
            else f"{self.tolerance:g} px"
        )
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "f1_per_image": per_image,
            "mean_precision": mean(precision),
            "mean_recall": mean(recall),
            "mean_f1": mean(f1),
            "mean_f1_per_image": mean(per_image),
            "classes_averaged": present,
            "tolerance": tol,
        }


def _ratio(num: float, den: float) -> float:
    # 0 when the denominator is empty: see compute() for why an absent side scores 0.
    return float(num) / float(den) if den else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def boundary_f1(pred: np.ndarray, gt: np.ndarray, num_classes: int, tolerance: float = 2.0) -> dict:
    """Boundary F1 of a single prediction; see ``BoundaryF1.compute`` for the keys."""
    acc = BoundaryF1(num_classes, tolerance=tolerance)
    acc.update(pred, gt)
    return acc.compute()
