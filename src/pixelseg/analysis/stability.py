"""Stability of a model: prediction consistency, spread over seeds, and calibration.

(a) ``prediction_consistency``: does the predicted class of a pixel survive a horizontal flip, a
    shift by a few pixels, a slight rescale? No labels needed.
(b) ``summarize_seeds``: mean and standard deviation of metrics over runs with different seeds.
(c) ``CalibrationAccumulator`` / ``expected_calibration_error``: how far the softmax confidence
    is from the accuracy (ECE, Guo et al. 2017), with reliability-diagram data, accumulated over
    many images in fixed memory.

The prediction callable has the same shape as in ``robustness``: a list of uint8 (H, W, 3)
images in, one (H, W) integer class map per image out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from ..data.transforms import resize_image, resize_labels
from .figures import new_figure, save_figure

PredictFn = Callable[[list[np.ndarray]], Sequence[np.ndarray]]

# ---------------------------------------------------------------------------------------------
# (a) prediction consistency


@dataclass
class ConsistencyResult:
    """Share of pixels whose predicted class is unchanged, per transform.

    ``per_image[i][t]`` is the agreement of image i under transform t; ``overall[t]`` pools the
    pixels of all images (large images weigh more); ``mean`` averages ``overall`` over transforms.
    """

    transforms: list[str]
    per_image: list[dict[str, float]]
    overall: dict[str, float]

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.overall.values()))) if self.overall else float("nan")

    def to_dict(self) -> dict:
        return {
            "transforms": list(self.transforms),
            "overall": dict(self.overall),
            "mean": self.mean,
            "per_image": [dict(d) for d in self.per_image],
        }

    def table(self) -> str:
        """Markdown table of overall agreement (%) per transform."""
        lines = ["| transform | consistent pixels (%) |", "|---|---|"]
        lines += [f"| {t} | {100 * self.overall[t]:.2f} |" for t in self.transforms]
        lines.append(f"| **mean** | {100 * self.mean:.2f} |")
        return "\n".join(lines)


def prediction_consistency(
    predict_fn: PredictFn,
    images: Sequence[np.ndarray],
    shift: int = 3,
    scales: Sequence[float] = (0.9, 1.1),
    flip: bool = True,
) -> ConsistencyResult:
    """Agreement between the prediction of each image and of transformed copies of it.

    - ``hflip``: predict the mirrored image, mirror the prediction back, compare every pixel.
    - ``shift``: drop the first ``shift`` rows and columns (content moves up-left by ``shift``
      pixels, no padding invented) and compare on the overlap. The default 3 is deliberately not
      a multiple of typical network strides (2, 4, 8...), which would hide aliasing.
    - ``scale<f>``: resize the image by f (bilinear), predict, resize the prediction back to the
      original size with nearest-neighbour sampling, compare every pixel.

    A model that is exactly equivariant to a transform scores 1.0 on it.

    >>> per_pixel = lambda imgs: [(im[..., 0] > 127).astype(np.int64) for im in imgs]
    >>> img = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    >>> r = prediction_consistency(per_pixel, [img], scales=())
    >>> r.overall
    {'hflip': 1.0, 'shift': 1.0}
    """
    transforms = (["hflip"] if flip else []) + (["shift"] if shift > 0 else [])
    transforms += [f"scale{s:g}" for s in scales]
    agree = dict.fromkeys(transforms, 0)
    total = dict.fromkeys(transforms, 0)
    per_image: list[dict[str, float]] = []
    for image in images:
        image = np.asarray(image)
        h, w = image.shape[:2]
        # One batch per image: the original and all its transformed copies.
        batch, names = [image], []
        if flip:
            batch.append(np.ascontiguousarray(image[:, ::-1]))
            names.append("hflip")
        if shift > 0:
            batch.append(np.ascontiguousarray(image[shift:, shift:]))
            names.append("shift")
        for s in scales:
            batch.append(resize_image(image, (max(1, round(h * s)), max(1, round(w * s)))))
            names.append(f"scale{s:g}")
        preds = [np.asarray(p) for p in predict_fn(batch)]
        base = preds[0]
        row: dict[str, float] = {}
        for name, pred in zip(names, preds[1:]):
            if name == "hflip":
                same, n = int((pred[:, ::-1] == base).sum()), base.size
            elif name == "shift":
                same, n = int((pred == base[shift:, shift:]).sum()), pred.size
            else:
                back = resize_labels(pred, (h, w))
                same, n = int((back == base).sum()), base.size
            row[name] = same / n if n else float("nan")
            agree[name] += same
            total[name] += n
        per_image.append(row)
    overall = {t: (agree[t] / total[t] if total[t] else float("nan")) for t in transforms}
    return ConsistencyResult(transforms=transforms, per_image=per_image, overall=overall)


# ---------------------------------------------------------------------------------------------
# (b) spread over seeds


def _flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, bool
        ):
            out[name] = float(value)
    return out


def summarize_seeds(runs: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean, std, min, max and n of every numeric metric over runs with different seeds.

    Nested dicts are flattened with dots (``{"val": {"miou": x}}`` -> ``"val.miou"``); lists and
    strings are skipped; a key missing from some runs is summarised over the runs that have it.
    ``std`` is the sample standard deviation (ddof=1), 0 for a single run. NaN values are skipped.

    >>> summarize_seeds([{"miou": 0.5}, {"miou": 0.7}])["miou"]["mean"]
    0.6
    """
    values: dict[str, list[float]] = {}
    for run in runs:
        for key, v in _flatten(run).items():
            if math.isfinite(v):
                values.setdefault(key, []).append(v)
    summary = {}
    for key, vs in values.items():
        arr = np.asarray(vs)
        summary[key] = {
            "mean": float(arr.mean()),
            "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "min": float(arr.min()),
            "max": float(arr.max()),
            "n": int(arr.size),
        }
    return summary


# ---------------------------------------------------------------------------------------------
# (c) calibration


@dataclass
class CalibrationResult:
    """ECE / MCE and the per-bin data of a reliability diagram.

    Bin b covers confidences in (b/n, (b+1)/n] (the first bin also holds 0). ``accuracy`` and
    ``confidence`` are NaN for empty bins.
    """

    ece: float
    mce: float
    count: int
    bin_lower: list[float]
    bin_upper: list[float]
    bin_count: list[int]
    bin_accuracy: list[float]
    bin_confidence: list[float]
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        nan_to_none = lambda xs: [None if not math.isfinite(x) else x for x in xs]  # noqa: E731
        return {
            "ece": self.ece,
            "mce": self.mce,
            "count": self.count,
            "n_bins": len(self.bin_count),
            "bins": {
                "lower": self.bin_lower,
                "upper": self.bin_upper,
                "count": self.bin_count,
                "accuracy": nan_to_none(self.bin_accuracy),
                "confidence": nan_to_none(self.bin_confidence),
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> CalibrationResult:
        b = d["bins"]
        none_to_nan = lambda xs: [float("nan") if x is None else float(x) for x in xs]  # noqa: E731
        return cls(
            ece=float(d["ece"]),
            mce=float(d["mce"]),
            count=int(d["count"]),
            bin_lower=list(b["lower"]),
            bin_upper=list(b["upper"]),
            bin_count=list(b["count"]),
            bin_accuracy=none_to_nan(b["accuracy"]),
            bin_confidence=none_to_nan(b["confidence"]),
        )


class CalibrationAccumulator:
    """Accumulates what ECE needs (per bin: count, sum of confidence, number correct), so a whole
    split can be measured without keeping its pixels.

    >>> acc = CalibrationAccumulator(n_bins=10)
    >>> acc.update(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))  # 90 % sure, 50 % right
    >>> round(acc.compute().ece, 6)
    0.4
    """

    def __init__(self, n_bins: int = 15, ignore_index: int = IGNORE_INDEX) -> None:
        if n_bins < 1:
            raise ValueError("n_bins must be at least 1")
        self.n_bins = n_bins
        self.ignore_index = ignore_index
        self.count = np.zeros(n_bins, dtype=np.int64)
        self.confidence_sum = np.zeros(n_bins, dtype=np.float64)
        self.correct = np.zeros(n_bins, dtype=np.int64)

    def update(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch. ``probs``: (N, C), (C, H, W) or (B, C, H, W) class probabilities (softmax
        output, not logits); ``labels``: (N,), (H, W) or (B, H, W), ``ignore_index`` skipped."""
        probs = np.asarray(probs, dtype=np.float64)
        labels = np.asarray(labels)
        if probs.ndim == 3:
            probs, labels = probs[None], labels[None]
        if probs.ndim == 4:  # (B, C, H, W) -> (B*H*W, C)
            probs = np.moveaxis(probs, 1, -1).reshape(-1, probs.shape[1])
        if probs.ndim != 2:
            raise ValueError(f"probs must be (N, C), (C, H, W) or (B, C, H, W), got {probs.shape}")
        labels = labels.reshape(-1)
        if labels.size != probs.shape[0]:
            raise ValueError(f"{probs.shape[0]} probability rows but {labels.size} labels")
        keep = labels != self.ignore_index
        probs, labels = probs[keep], labels[keep]
        if labels.size == 0:
            return
        confidence = probs.max(axis=1)
        correct = probs.argmax(axis=1) == labels
        bins = np.clip(np.ceil(confidence * self.n_bins).astype(np.int64) - 1, 0, self.n_bins - 1)
        self.count += np.bincount(bins, minlength=self.n_bins)
        self.confidence_sum += np.bincount(bins, weights=confidence, minlength=self.n_bins)
        self.correct += np.bincount(bins, weights=correct, minlength=self.n_bins).astype(np.int64)

    def merge(self, other: CalibrationAccumulator) -> None:
        """Add another accumulator's counts (e.g. from another process)."""
        if other.n_bins != self.n_bins:
            raise ValueError("cannot merge accumulators with different n_bins")
        self.count += other.count
        self.confidence_sum += other.confidence_sum
        self.correct += other.correct

    def compute(self) -> CalibrationResult:
        n = int(self.count.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = self.correct / self.count
            confidence = self.confidence_sum / self.count
        gaps = np.abs(accuracy - confidence)
        filled = self.count > 0
        ece = float((self.count[filled] / n * gaps[filled]).sum()) if n else float("nan")
        mce = float(gaps[filled].max()) if n else float("nan")
        edges = np.linspace(0.0, 1.0, self.n_bins + 1)
        return CalibrationResult(
            ece=ece,
            mce=mce,
            count=n,
            bin_lower=edges[:-1].tolist(),
            bin_upper=edges[1:].tolist(),
            bin_count=self.count.tolist(),
            bin_accuracy=accuracy.tolist(),
            bin_confidence=confidence.tolist(),
        )


def expected_calibration_error(
    probs: np.ndarray,
    labels: np.ndarray,
    n_bins: int = 15,
    ignore_index: int = IGNORE_INDEX,
) -> CalibrationResult:
    """ECE of one array of probabilities; see ``CalibrationAccumulator`` for shapes."""
    acc = CalibrationAccumulator(n_bins=n_bins, ignore_index=ignore_index)
    acc.update(probs, labels)
    return acc.compute()


def reliability_figure(result: CalibrationResult | dict):
    """Reliability diagram: accuracy per confidence bin against the diagonal, with bin counts."""
    if isinstance(result, dict):
        result = CalibrationResult.from_dict(result)
    fig = new_figure(5.0, 5.2)
    ax, ax_count = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    lower = np.asarray(result.bin_lower)
    width = np.asarray(result.bin_upper) - lower
    acc = np.nan_to_num(np.asarray(result.bin_accuracy, dtype=np.float64))
    conf = np.asarray(result.bin_confidence, dtype=np.float64)
    ax.bar(lower, acc, width=width, align="edge", edgecolor="black", label="accuracy")
    gap_base = np.where(np.isfinite(conf), np.minimum(acc, conf), 0)
    gap = np.where(np.isfinite(conf), np.abs(conf - acc), 0)
    ax.bar(
        lower,
        gap,
        bottom=gap_base,
        width=width,
        align="edge",
        color="red",
        alpha=0.3,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {100 * result.ece:.2f} %)")
    ax.legend(loc="upper left", fontsize=8)
    ax_count.bar(lower, result.bin_count, width=width, align="edge", color="gray")
    ax_count.set_yscale("log" if max(result.bin_count, default=0) > 0 else "linear")
    ax_count.set_xlabel("confidence")
    ax_count.set_ylabel("pixels")
    ax_count.set_xlim(0, 1)
    return fig


def plot_reliability(result: CalibrationResult | dict, path: str | Path) -> Path:
    """Save the reliability diagram of ``result`` (or its ``to_dict()``) as PNG."""
    return save_figure(reliability_figure(result), path)
