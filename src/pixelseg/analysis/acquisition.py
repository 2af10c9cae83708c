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

Labelled images are scored by ``label_disagreement``, from two views of where the model
confidently disagrees with the label. The class view: per class, the model's confidence summed
over the pixels where label and prediction disagree about that class, over the pixels either
gives it (a confidence-weighted 1 - IoU), averaged over the classes present; it finds a wrong
small object, which the pixel count hardly notices. The pixel view: the confidence summed over
the disagreeing pixels, over the labelled pixels; it finds a large region given the wrong class
(an erased car painted as road), which the class average dilutes among the classes the image
holds. The disagreement is the mean of the two. A mask drawn a few
pixels off (a misregistered annotation) disagrees only along edges, and a model trained on it
has partly learnt it, so that score alone ranks it low. The label is therefore also slid over
the prediction by up to ``MISALIGN_FRACTION`` of the short side: when some shift of at least 2
px makes them agree better, the disagreement that the shift removes (``misalignment``, in the
same units) is added to the score. A correct label gains nothing from a shift; shifts of one
pixel are left out, because a model that classifies at stride 4 is itself that far off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import IGNORE_INDEX
from .instances import uncertainty_map

GRID = 4  # layout descriptor: class probabilities pooled on a GRID x GRID grid
WEIGHTS = {"margin": 0.5, "entropy": 0.0, "flip": 0.5}  # of the uncertainty score
MISALIGN_FRACTION = 0.02  # label shifts searched: up to this share of the short side (7 px at 360)
MIN_SHIFT = 2  # px; a shift of 1 is within a stride-4 model's own localisation error


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
    """How likely a label is wrong (higher ``score``: look at it sooner)."""

    class_disagreement: float  # confidence-weighted 1 - IoU of label and prediction, per class
    pixel_disagreement: float  # confidence summed over the disagreeing pixels / labelled pixels
    disagreeing_pixels: float  # share of labelled pixels where they differ
    worst_class: int  # the class whose disagreement is largest
    misalignment: float = 0.0  # the class disagreement that shifting the label by ``shift`` removes
    shift: tuple[int, int] = (0, 0)  # (dy, dx): the label fits best moved down dy, right dx

    @property
    def disagreement(self) -> float:
        """The mean of the class view (small objects) and the pixel view (large regions)."""
        return (self.class_disagreement + self.pixel_disagreement) / 2

    @property
    def score(self) -> float:
        return self.disagreement + self.misalignment


def _class_disagreement(lab: np.ndarray, prd: np.ndarray, conf: np.ndarray) -> dict[int, float]:
    """Per class: the confidence over the pixels where label and prediction disagree about
    it, over the pixels either gives it. Flat arrays of labelled pixels."""
    per_class = {}
    for c in np.union1d(np.unique(lab), np.unique(prd)).tolist():
        either = (lab == c) | (prd == c)
        differ = either & (lab != prd)
        per_class[c] = float(conf[differ].sum() / either.sum())
    return per_class


def _overlap(shape: tuple[int, int], dy: int, dx: int) -> tuple[tuple, tuple]:
    """Slices of (prediction, label) that line up when the label moves down dy, right dx."""
    h, w = shape
    ys = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    return (ys[0], xs[0]), (ys[1], xs[1])


def best_shift(pred: np.ndarray, label: np.ndarray, radius: int) -> tuple[int, int]:
    """The shift of ``label`` (|dy|, |dx| <= radius, at least ``MIN_SHIFT`` on one axis) under
    which it agrees with ``pred`` on the largest share of labelled pixels, or (0, 0) when no
    such shift beats leaving it where it is. Searched on every other pixel, then settled at
    full resolution around the best (a one-pixel edge can fall between the samples); ties go
    to the smaller shift."""

    def agreement(shift: tuple[int, int], step: int) -> float:
        at_pred, at_label = _overlap(pred.shape, *shift)
        p, lab = pred[at_pred][::step, ::step], label[at_label][::step, ::step]
        valid = lab != IGNORE_INDEX
        n = int(valid.sum())
        return float((p[valid] == lab[valid]).sum() / n) if n else 0.0

    def allowed(d: tuple[int, int]) -> bool:
        return MIN_SHIFT <= max(abs(d[0]), abs(d[1])) <= radius

    def size(d: tuple[int, int]) -> tuple[int, int]:
        return max(abs(d[0]), abs(d[1])), abs(d[0]) + abs(d[1])

    shifts = sorted(
        (
            d
            for d in (
                (y, x) for y in range(-radius, radius + 1) for x in range(-radius, radius + 1)
            )
            if allowed(d)
        ),
        key=size,
    )
    coarse = max(shifts, key=lambda d: agreement(d, 2))  # max keeps the first of equals
    near = sorted(
        (
            d
            for d in ((coarse[0] + a, coarse[1] + b) for a in (-1, 0, 1) for b in (-1, 0, 1))
            if allowed(d)
        ),
        key=size,
    )
    best = max(near, key=lambda d: agreement(d, 1))
    return best if agreement(best, 1) > agreement((0, 0), 1) else (0, 0)


def label_disagreement(probs: np.ndarray, label: np.ndarray) -> LabelScore:
    """Score a label map against the model's (C, H, W) probabilities."""
    pred = probs.argmax(0)
    conf = probs.max(0).astype(np.float64)
    valid = label != IGNORE_INDEX
    if not valid.any():
        return LabelScore(0.0, 0.0, 0.0, -1)
    lab, prd, cnf = label[valid], pred[valid], conf[valid]
    per_class = _class_disagreement(lab, prd, cnf)
    class_view = float(np.mean(list(per_class.values())))
    radius = max(MIN_SHIFT, round(MISALIGN_FRACTION * min(label.shape)))
    shift = best_shift(pred, label, radius)
    misalignment = 0.0
    if shift != (0, 0):
        at_pred, at_label = _overlap(label.shape, *shift)
        moved = label[at_label]
        ok = moved != IGNORE_INDEX
        if ok.any():
            shifted = _class_disagreement(moved[ok], pred[at_pred][ok], conf[at_pred][ok])
            misalignment = max(0.0, class_view - float(np.mean(list(shifted.values()))))
    differ = lab != prd
    return LabelScore(
        class_disagreement=class_view,
        pixel_disagreement=float(cnf[differ].sum() / lab.size),
        disagreeing_pixels=float(differ.mean()),
        worst_class=int(max(per_class, key=per_class.get)),
        misalignment=misalignment,
        shift=shift if misalignment > 0 else (0, 0),
    )


__all__ = [
    "ImageScore",
    "LabelScore",
    "best_shift",
    "class_balanced_mean",
    "diverse_order",
    "label_disagreement",
    "layout_descriptor",
    "score_image",
]
