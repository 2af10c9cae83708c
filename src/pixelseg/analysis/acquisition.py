"""What to label next, and which labels look wrong: scores computed from a model's
probabilities, one image at a time, for ``pixelseg rank``.

Unlabelled images are scored by how unsure the model is, aggregated per predicted class so a
large easy region (sky, road) does not drown a small hard one: each class the model predicts
contributes the mean uncertainty of its own pixels, and the image's score is the mean over
those classes. Three signals, each in [0, 1]:

- ``margin``: 1 - (top-1 - top-2 probability), class-balanced;
- ``entropy``: normalised Shannon entropy, class-balanced;
- ``flip``: the share of each predicted class's pixels whose class changes when the image is
  mirrored (test-time disagreement), class-balanced.

A compact layout descriptor (the class probabilities pooled on a coarse grid) lets the
selection keep the top K apart: ``diverse_order`` is a greedy k-center that trades each
candidate's uncertainty against its distance to what is already chosen, so neighbouring video
frames do not fill the top K.

Labelled images are scored by ``label_disagreement``: per class, the model's confidence summed
over the pixels where label and prediction disagree about that class, over the pixels either
gives it (a confidence-weighted 1 - IoU), averaged over the classes present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import IGNORE_INDEX
from .instances import uncertainty_map

GRID = 4  # layout descriptor: class probabilities pooled on a GRID x GRID grid
WEIGHTS = {"margin": 0.5, "entropy": 0.0, "flip": 0.5}  # of the uncertainty score


def class_balanced_mean(values: np.ndarray, class_map: np.ndarray) -> float:
    """Mean over the classes present in ``class_map`` of each class's mean ``values``."""
    flat = class_map.ravel()
    counts = np.bincount(flat)
    sums = np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=counts.size)
    present = counts > 0
    return float((sums[present] / counts[present]).mean()) if present.any() else 0.0


def layout_descriptor(probs: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(C * grid * grid,) float32: the mean class probabilities of each cell of a coarse grid,
    a fingerprint of what is where (near-duplicate frames have near-equal descriptors)."""
    c, h, w = probs.shape
    rows = np.array_split(np.arange(h), min(grid, h))
    cols = np.array_split(np.arange(w), min(grid, w))
    cells = [
        probs[:, r[0] : r[-1] + 1, q[0] : q[-1] + 1].mean(axis=(1, 2)) for r in rows for q in cols
    ]
    out = np.zeros((grid * grid, c), dtype=np.float32)
    out[: len(cells)] = np.stack(cells)
    return out.ravel()


@dataclass
class ImageScore:
    """How much labelling one image would teach the model (higher: label it sooner)."""

    margin: float
    entropy: float
    flip: float
    classes: int  # predicted classes
    descriptor: np.ndarray

    @property
    def uncertainty(self) -> float:
        return sum(WEIGHTS[k] * getattr(self, k) for k in WEIGHTS)


def score_image(probs: np.ndarray, flipped_probs: np.ndarray | None = None) -> ImageScore:
    """Score one image from its (C, H, W) probabilities and, optionally, those of its mirror
    image mirrored back (without them ``flip`` is 0)."""
    class_map = probs.argmax(0)
    flip = 0.0
    if flipped_probs is not None:
        changed = (flipped_probs.argmax(0) != class_map).astype(np.float32)
        flip = class_balanced_mean(changed, class_map)
    return ImageScore(
        margin=class_balanced_mean(uncertainty_map(probs, "margin"), class_map),
        entropy=class_balanced_mean(uncertainty_map(probs, "entropy"), class_map),
        flip=flip,
        classes=int(np.unique(class_map).size),
        descriptor=layout_descriptor(probs),
    )


def diverse_order(uncertainty: np.ndarray, descriptors: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` images to label first, in order: the most uncertain first, then
    each next one maximising uncertainty x (distance to the nearest chosen one / the largest
    such distance), a greedy k-center weighted by uncertainty."""
    n = len(uncertainty)
    k = min(k, n)
    if k == 0:
        return []
    u = np.asarray(uncertainty, dtype=np.float64)
    d = np.asarray(descriptors, dtype=np.float32)
    chosen = [int(np.argmax(u))]
    nearest = np.linalg.norm(d - d[chosen[0]], axis=1)
    for _ in range(k - 1):
        spread = nearest / max(float(nearest.max()), 1e-12)
        gain = u * spread
        gain[chosen] = -1.0
        nxt = int(np.argmax(gain))
        chosen.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(d - d[nxt], axis=1))
    return chosen


@dataclass
class LabelScore:
    """How likely a label is wrong (higher: look at it sooner)."""

    disagreement: float  # confidence-weighted 1 - IoU between label and prediction, per class
    disagreeing_pixels: float  # share of labelled pixels where they differ
    worst_class: int  # the class whose disagreement is largest


def label_disagreement(probs: np.ndarray, label: np.ndarray) -> LabelScore:
    """Score a label map against the model's (C, H, W) probabilities."""
    pred = probs.argmax(0)
    conf = probs.max(0).astype(np.float64)
    valid = label != IGNORE_INDEX
    if not valid.any():
        return LabelScore(0.0, 0.0, -1)
    lab, prd, cf = label[valid], pred[valid], conf[valid]
    per_class = {}
    for c in np.union1d(np.unique(lab), np.unique(prd)).tolist():
        either = (lab == c) | (prd == c)
        differ = either & (lab != prd)
        per_class[c] = float(cf[differ].sum() / either.sum())
    worst = max(per_class, key=per_class.get)
    return LabelScore(
        disagreement=float(np.mean(list(per_class.values()))),
        disagreeing_pixels=float((lab != prd).mean()),
        worst_class=int(worst),
    )


__all__ = [
    "ImageScore",
    "LabelScore",
    "class_balanced_mean",
    "diverse_order",
    "label_disagreement",
    "layout_descriptor",
    "score_image",
]
