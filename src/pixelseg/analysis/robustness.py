"""Robustness to corruptions: mIoU of a model on a split under every corruption and severity.

The model is reached only through a prediction callable, so this module knows nothing about
checkpoints or devices::

    def predict_fn(images: list[np.ndarray]) -> list[np.ndarray]:
        ...  # each image (H, W, 3) uint8 -> class map (H, W) int

    result = run_robustness(predict_fn, samples, num_classes=11)
    print(result.table())
    result.plot(RunFolder(run_dir).robustness_plot)

When the model was trained with corruptions (``augment.corruptions``), pass their names as
``trained_corruptions``: the summary then also averages the corruptions seen in training and the
photometric ones held out from it separately, so a gain on the held-out group is not just the
model having memorised its training corruptions (geometric corruptions belong to neither group:
rotation and scale are trained by the geometric augmentation).

Each mIoU comes from one confusion matrix accumulated over the whole split (not an average of
per-image scores), the project's ``metrics.ConfusionMatrix``; by default it is reduced by
``metrics.mean_iou`` like every other mIoU (the classes present in the ground truth or the
prediction; 0.0 when no pixel counted). Pass ``miou_fn`` for another reduction.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from ..metrics import ConfusionMatrix, mean_iou
from ..runs import RunFolder
from .corruptions import CORRUPTIONS, GEOMETRIC, SEVERITIES, corrupt
from .figures import new_figure, save_figure

PredictFn = Callable[[list[np.ndarray]], Sequence[np.ndarray]]
MiouFn = Callable[[np.ndarray], float]

MIOU_DEFINITION = "mean IoU over classes present in the ground truth or the prediction"

# Keys and labels of the groups of a split summary, in display order.
GROUPS = {"seen_in_training": "seen in training", "held_out": "held out from training"}


class LabelledSample(Protocol):
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) int64, IGNORE_INDEX = void


def per_image(fn: Callable[[np.ndarray], np.ndarray]) -> PredictFn:
    """Turn a one-image predictor into the list-in, list-out form that this module expects."""

    def batched(images: list[np.ndarray]) -> list[np.ndarray]:
        return [fn(image) for image in images]

    return batched


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction, from
    the project's one ConfusionMatrix (``metrics.py``).

    Pixels whose ground truth is IGNORE_INDEX (or outside ``0..num_classes-1``) are skipped.
    """
    cm = ConfusionMatrix(num_classes)
    _accumulate(cm, pred, gt)
    return cm.mat.numpy()


def _accumulate(cm: ConfusionMatrix, pred: np.ndarray, gt: np.ndarray) -> None:
    pred = np.asarray(pred).astype(np.int64, copy=False).ravel()
    gt = np.asarray(gt).astype(np.int64, copy=False).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has {pred.size} pixels, ground truth {gt.size}")
    counted = pred[(gt != IGNORE_INDEX) & (gt >= 0) & (gt < cm.num_classes)]
    if counted.size and (counted.min() < 0 or counted.max() >= cm.num_classes):
        raise ValueError(f"predicted class ids must be in 0..{cm.num_classes - 1}")
    cm.update(torch.from_numpy(pred), torch.from_numpy(gt))


@dataclass
class RobustnessResult:
    """mIoU per corruption and severity, with the clean mIoU it is measured against."""

    clean_miou: float
    severities: tuple[int, ...]
    miou: dict[str, list[float]]  # corruption -> one mIoU per severity, in ``severities`` order
    num_samples: int = 0
    miou_definition: str = MIOU_DEFINITION
    extra: dict[str, Any] = field(default_factory=dict)
    # Corruptions the model was trained with (augment.corruptions); None or empty: no split.
    trained_corruptions: tuple[str, ...] | None = None

    def corruption_mean(self, name: str) -> float:
        """mIoU of one corruption averaged over severities."""
        return float(np.mean(self.miou[name]))

    @property
    def mean_corrupted_miou(self) -> float:
        """mIoU averaged over every corruption and severity."""
        values = [v for row in self.miou.values() for v in row]
        return float(np.mean(values)) if values else float("nan")

    def relative(self, value: float) -> float:
        """``value`` / clean mIoU; NaN when the clean mIoU is 0."""
        return value / self.clean_miou if self.clean_miou > 0 else float("nan")

    @property
    def relative_robustness(self) -> float:
        """Mean corrupted mIoU / clean mIoU: 1 = unaffected, 0 = destroyed."""
        return self.relative(self.mean_corrupted_miou)

    def group_names(self) -> dict[str, list[str]]:
        """``{"seen_in_training": [...], "held_out": [...]}`` over the evaluated corruptions
        (held out = photometric and not trained with); empty without trained corruptions."""
        if not self.trained_corruptions:
            return {}
        trained = set(self.trained_corruptions)
        return {
            "seen_in_training": [n for n in self.miou if n in trained],
            "held_out": [n for n in self.miou if n not in trained and n not in GEOMETRIC],
        }

    def group_mean(self, names: Iterable[str]) -> float:
        """mIoU averaged over every severity of the corruptions ``names`` (NaN when none)."""
        values = [v for n in names for v in self.miou[n]]
        return float(np.mean(values)) if values else float("nan")

    def _groups_dict(self) -> dict:
        groups = {
            key: {
                "corruptions": names,
                "mean_miou": _num(self.group_mean(names)),
                "relative": _num(self.relative(self.group_mean(names))),
            }
            for key, names in self.group_names().items()
        }
        if not groups:
            return {}
        ungrouped = [n for n in self.miou if n in GEOMETRIC]
        return {
            "trained_corruptions": list(self.trained_corruptions or ()),
            "groups": groups,
            **({"ungrouped": ungrouped} if ungrouped else {}),
        }

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN written as None); ``RobustnessResult.from_dict`` reverses it.
        With trained corruptions it also holds ``trained_corruptions`` and ``groups``
        (``seen_in_training`` and ``held_out``: their corruptions, mean mIoU and relative)."""
        return {
            "clean_miou": _num(self.clean_miou),
            "severities": list(self.severities),
            "corruptions": {
                name: {
                    "miou": [_num(v) for v in row],
                    "mean": _num(self.corruption_mean(name)),
                    "relative": _num(self.relative(self.corruption_mean(name))),
                }
                for name, row in self.miou.items()
            },
            "mean_corrupted_miou": _num(self.mean_corrupted_miou),
            "relative_robustness": _num(self.relative_robustness),
            **self._groups_dict(),
            "num_samples": self.num_samples,
            "miou_definition": self.miou_definition,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RobustnessResult:
        return cls(
            clean_miou=_float(d["clean_miou"]),
            severities=tuple(d["severities"]),
            miou={k: [_float(v) for v in c["miou"]] for k, c in d["corruptions"].items()},
            num_samples=int(d.get("num_samples", 0)),
            miou_definition=d.get("miou_definition", MIOU_DEFINITION),
            extra=dict(d.get("extra", {})),
            trained_corruptions=tuple(d["trained_corruptions"])
            if d.get("trained_corruptions")
            else None,
        )

    def table(self, digits: int = 1) -> str:
        """Markdown table of mIoU (in %) per corruption x severity, with mean and relative."""
        sev = " | ".join(f"s{s}" for s in self.severities)
        lines = [
            f"| corruption | {sev} | mean | relative |",
            "|" + "---|" * (len(self.severities) + 3),
        ]
        for name, row in self.miou.items():
            cells = " | ".join(_pct(v, digits) for v in row)
            mean = self.corruption_mean(name)
            rel = _fmt(self.relative(mean), 3)
            lines.append(f"| {name} | {cells} | {_pct(mean, digits)} | {rel} |")
        blank = " | ".join("" for _ in self.severities)
        for key, names in self.group_names().items():
            mean = self.group_mean(names)
            lines.append(
                f"| **{GROUPS[key]}** ({', '.join(names) or 'none'}) | {blank} | "
                f"{_pct(mean, digits)} | {_fmt(self.relative(mean), 3)} |"
            )
        lines.append(
            f"| **all corruptions** | {blank} | {_pct(self.mean_corrupted_miou, digits)} | "
            f"{_fmt(self.relative_robustness, 3)} |"
        )
        lines.append(f"| clean | {blank} | {_pct(self.clean_miou, digits)} | 1.000 |")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Line plot of mIoU vs severity per corruption (clean mIoU dashed), saved as PNG."""
        return save_figure(robustness_figure(self), path)


def robustness_figure(result: RobustnessResult | dict):
    """Matplotlib figure of a result (or its ``to_dict()``): mIoU vs severity per corruption."""
    if isinstance(result, dict):
        result = RobustnessResult.from_dict(result)
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    for name, row in result.miou.items():
        ax.plot(result.severities, [100 * v for v in row], marker="o", label=name)
    if math.isfinite(result.clean_miou):
        ax.axhline(100 * result.clean_miou, color="black", linestyle="--", label="clean")
    ax.set_xlabel("severity")
    ax.set_ylabel("mIoU (%)")
    ax.set_xticks(list(result.severities))
    ax.set_title("Robustness to corruptions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return fig


def run_robustness(
    predict_fn: PredictFn,
    samples: Sequence[LabelledSample],
    num_classes: int,
    corruptions: Iterable[str] | None = None,
    severities: Iterable[int] = SEVERITIES,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 8,
    miou_fn: MiouFn = mean_iou,
    trained_corruptions: Iterable[str] | None = None,
) -> RobustnessResult:
    """Evaluate ``predict_fn`` on ``samples`` clean and under each corruption x severity.

    predict_fn: takes a list of uint8 (H, W, 3) images (at most ``batch_size``), returns one
        (H, W) integer class map per image; ``per_image(fn)`` adapts a one-image function.
    samples: objects with ``.image`` (H, W, 3) uint8 and ``.mask`` (H, W) int, 255 = ignore.
    corruptions: names from ``CORRUPTIONS`` (default: all of them).
    miou_fn: reduces a (C, C) confusion matrix (rows = ground truth) to an mIoU in [0, 1].
    trained_corruptions: the corruptions the model was trained with (``augment.corruptions``,
        see ``trained_corruptions_of``); the summary then splits seen vs held-out corruptions.

    Randomness is seeded per (seed, corruption, severity, sample index), so a result does not
    depend on which other corruptions were run or in what order.
    """
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise PixelsegError(
            f"unknown corruption(s) {', '.join(unknown)}; choose from {', '.join(CORRUPTIONS)}"
        )
    severities = tuple(int(s) for s in severities)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise PixelsegError(f"severities must be in 1..5, got {bad}")
    if len(samples) == 0:
        raise PixelsegError("robustness: the split has no samples")

    bar = _progress_bar((1 + len(names) * len(severities)) * len(samples), progress)

    def evaluate(transform: Callable[[int, LabelledSample], tuple[np.ndarray, np.ndarray]]):
        cm = ConfusionMatrix(num_classes)
        for start in range(0, len(samples), batch_size):
            pairs = [
                transform(i, samples[i])
                for i in range(start, min(start + batch_size, len(samples)))
            ]
            preds = predict_fn([image for image, _ in pairs])
            if len(preds) != len(pairs):
                raise ValueError(f"predict_fn returned {len(preds)} maps for {len(pairs)} images")
            for (image, mask), pred in zip(pairs, preds):
                if np.shape(pred) != image.shape[:2]:
                    raise ValueError(
                        f"predict_fn returned a {np.shape(pred)} map for a {image.shape[:2]} image"
                    )
                _accumulate(cm, pred, mask)
            bar.update(len(pairs))
        return float(miou_fn(cm.mat.numpy()))

    try:
        clean = evaluate(lambda i, s: (np.asarray(s.image), np.asarray(s.mask)))
        table: dict[str, list[float]] = {}
        for name in names:
            table[name] = []
            for severity in severities:

                def transform(i, s, name=name, severity=severity):
                    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity, i])
                    return corrupt(np.asarray(s.image), np.asarray(s.mask), name, severity, rng)

                table[name].append(evaluate(transform))
    finally:
        bar.close()
    return RobustnessResult(
        clean_miou=clean,
        severities=severities,
        miou=table,
        num_samples=len(samples),
        trained_corruptions=tuple(trained_corruptions) if trained_corruptions else None,
    )


def trained_corruptions_of(run_dir: str | Path) -> tuple[str, ...]:
    """``augment.corruptions`` of the run's ``config.yaml`` (empty when it has none, or when
    augmentation was off so they were not applied)."""
    run = RunFolder(run_dir)
    if not run.has_config():
        return ()
    augment = run.config().augment
    return tuple(augment.corruptions) if augment.enabled else ()


def _progress_bar(total: int, enabled: bool) -> tqdm:
    return tqdm(total=total, desc="robustness", unit="img", disable=not enabled)


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _float(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _fmt(v: float, digits: int) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float, digits: int) -> str:
    return "n/a" if not math.isfinite(v) else f"{100 * v:.{digits}f}"
