"""Read a training history and say, in plain words, whether the model overfits.

A history is a list of per-epoch dicts, one line of ``metrics.jsonl`` each. Keys used (any may
be missing or None in some rows): ``epoch``, ``train_loss``, ``val_loss``, ``train_miou``,
``val_miou``. mIoU may be a fraction (0..1, as the metrics module writes it) or a percentage;
values above 1 are taken as percentages. Differences are reported in points (percent).

Measuring (``measure_history``: the numbers of the curves) and classifying (``classify``: the
diagnosis from those numbers) are separate steps; ``analyse_history`` does both.

Example::

    report = analyse_history(load_history(run_dir / "metrics.jsonl"))
    print(report.verdict)   # "val mIoU peaked at epoch 31 and fell 4.0 points while ..."
    plot_curves(history, run_dir / "curves.png")
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import PixelsegError
from .figures import new_figure, save_figure

KINDS = ("too_short", "overfitting", "unstable", "still_improving", "gap", "ok")


@dataclass
class OverfittingReport:
    """What the curves say. ``kind`` is one of ``KINDS``; ``verdict`` is one sentence for people.

    metric: the validation series judged (``val_miou``, or ``val_loss`` when there is no mIoU).
    drop_from_best: how far the metric fell from its best to the last epoch: mIoU points, or
        percent of the best loss for ``val_loss``.
    gap_*: train minus val mIoU in points (None without ``train_miou``); loss gaps are
        val minus train loss (None without both losses).
    """

    kind: str
    verdict: str
    advice: str
    metric: str | None
    epochs: int
    best_epoch: int | None = None
    best_value: float | None = None
    final_value: float | None = None
    drop_from_best: float | None = None
    recent_gain: float | None = None
    gap_at_best: float | None = None
    gap_at_end: float | None = None
    loss_gap_at_best: float | None = None
    loss_gap_at_end: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def load_history(path: str | Path) -> list[dict]:
    """Read a ``metrics.jsonl`` file (one JSON object per line; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise PixelsegError(f"{path}: training history not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise PixelsegError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return rows


def _series(history: list[dict], key: str) -> dict[int, float]:
    """epoch -> finite value of ``key`` (rows without it are skipped)."""
    out = {}
    for i, row in enumerate(history):
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[int(row.get("epoch", i + 1))] = float(v)
    return out


def _as_points(*series: dict[int, float]) -> list[dict[int, float]]:
    """mIoU in percent: scale fractions by 100 (all series together, so they stay comparable)."""
    values = [v for s in series for v in s.values()]
    factor = 1.0 if values and max(values) > 1.0 else 100.0
    return [{e: v * factor for e, v in s.items()} for s in series]


@dataclass(frozen=True)
class CurveMeasures:
    """The numbers a history gives, before any judgement (``measure_history``).

    metric: the validation series measured (``val_miou``, or ``val_loss`` without mIoU);
    ``validated`` epochs have a value of it. The rest is None when fewer than 3 do.
    drop_from_best: mIoU points from the best to the last epoch, or for ``val_loss`` its rise
    in percent of the best. recent_gain: the change over the last ``window`` epochs in the same
    units, positive when better. train_improved: whether the train series (``train_name``)
    got better from the best epoch to the last (None without both values).
    """

    metric: str | None
    higher_better: bool
    epochs: int
    validated: int
    train_name: str = "train loss"
    best_epoch: int | None = None
    best_value: float | None = None
    final_value: float | None = None
    drop_from_best: float | None = None
    recent_gain: float | None = None
    window: int | None = None
    train_improved: bool | None = None
    gap_at_best: float | None = None
    gap_at_end: float | None = None
    loss_gap_at_best: float | None = None
    loss_gap_at_end: float | None = None


_REPORTED = tuple(
    f.name for f in fields(OverfittingReport) if f.name in {g.name for g in fields(CurveMeasures)}
)


def measure_history(history: list[dict]) -> CurveMeasures:
    """Best and last epoch of the validation metric, its drop and recent gain, and the train -
    val gaps there."""
    train_miou, val_miou = _as_points(_series(history, "train_miou"), _series(history, "val_miou"))
    train_loss, val_loss = _series(history, "train_loss"), _series(history, "val_loss")
    if len(val_miou) >= 2:
        metric, val, higher_better = "val_miou", val_miou, True
        train, train_name = (train_miou, "train mIoU") if train_miou else (train_loss, "train loss")
    else:
        metric, val, higher_better = "val_loss", val_loss, False
        train, train_name = train_loss, "train loss"
    n = len(val)
    if n < 3:
        return CurveMeasures(metric if n else None, higher_better, len(history), n, train_name)

    epochs = sorted(val)
    values = np.array([val[e] for e in epochs])
    best_i = int(np.argmax(values) if higher_better else np.argmin(values))
    best_epoch, last_epoch = epochs[best_i], epochs[-1]
    best, final = float(values[best_i]), float(values[-1])
    if higher_better:
        drop = best - final
    else:  # relative: losses have no common scale
        drop = 100.0 * (final - best) / abs(best) if best else 0.0
    k = min(n - 1, max(2, n // 5))
    gain = float(values[-1] - values[-1 - k]) * (1 if higher_better else -1)
    if not higher_better:  # relative, like the drop
        gain = 100.0 * gain / abs(values[-1 - k]) if values[-1 - k] else 0.0
    train_improved = None
    if best_epoch in train and last_epoch in train:
        delta = train[last_epoch] - train[best_epoch]
        train_improved = delta > 0 if train_name == "train mIoU" else delta < 0

    def gap(e: int) -> float | None:
        return train_miou[e] - val_miou[e] if e in train_miou and e in val_miou else None

    def loss_gap(e: int) -> float | None:
        return val_loss[e] - train_loss[e] if e in train_loss and e in val_loss else None

    return CurveMeasures(
        metric=metric,
        higher_better=higher_better,
        epochs=len(history),
        validated=n,
        train_name=train_name,
        best_epoch=best_epoch,
        best_value=best,
        final_value=final,
        drop_from_best=drop,
        recent_gain=gain,
        window=k,
        train_improved=train_improved,
        gap_at_best=gap(best_epoch),
        gap_at_end=gap(last_epoch),
        loss_gap_at_best=loss_gap(best_epoch),
        loss_gap_at_end=loss_gap(last_epoch),
    )


def classify(
    m: CurveMeasures,
    drop_tol: float = 1.0,
    gain_tol: float = 0.5,
    gap_tol: float = 15.0,
    loss_rise_tol: float = 5.0,
) -> OverfittingReport:
    """The diagnosis of measured curves (the tolerances as in ``analyse_history``)."""
    if m.validated < 3:
        return OverfittingReport(
            kind="too_short",
            verdict=f"only {m.validated} epoch(s) with validation results: too few to judge",
            advice="train for more epochs",
            metric=m.metric,
            epochs=m.epochs,
        )
    # The measures the report carries: every field the two classes share, by name.
    report = {k: getattr(m, k) for k in _REPORTED}
    up = m.higher_better
    what, unit = ("val mIoU", "points") if up else ("val loss", "%")
    train_up = m.train_name == "train mIoU"
    if m.drop_from_best >= (drop_tol if up else loss_rise_tol):
        head = (
            f"{what} {'peaked' if up else 'bottomed out'} at epoch {m.best_epoch} and "
            f"{'fell' if up else 'rose'} {m.drop_from_best:.1f} {unit}"
        )
        if m.train_improved is False:
            kept = "fell" if train_up else "rose"
            return OverfittingReport(
                kind="unstable",
                verdict=f"{head} while {m.train_name} {kept} too: unstable training",
                advice="lower the learning rate or add warm-up; keep the best checkpoint",
                **report,
            )
        kept = "kept rising" if train_up else "kept falling"
        tail = f" while {m.train_name} {kept}" if m.train_improved else ""
        return OverfittingReport(
            kind="overfitting",
            verdict=f"{head}{tail}: overfitting",
            advice="use the best checkpoint; more data, augmentation, weight decay or early "
            "stopping would help",
            **report,
        )
    if m.recent_gain >= gain_tol:
        return OverfittingReport(
            kind="still_improving",
            verdict=f"{what} still improving at the last epoch ({'+' if up else '-'}"
            f"{m.recent_gain:.1f} {unit} over the last {m.window} epochs): train longer",
            advice="train for more epochs",
            **report,
        )
    if m.gap_at_end is not None and m.gap_at_end >= gap_tol:
        return OverfittingReport(
            kind="gap",
            verdict=f"{what} has levelled off {m.gap_at_end:.1f} points below train mIoU "
            "without falling: a generalisation gap but no overfitting trend",
            advice="more data or stronger augmentation may close the gap",
            **report,
        )
    if m.gap_at_end is not None:
        verdict = "train and val agree: no sign of overfitting"
    else:
        verdict = f"{what} has levelled off without getting worse: no sign of overfitting"
    return OverfittingReport(kind="ok", verdict=verdict, advice="", **report)


def analyse_history(
    history: list[dict],
    drop_tol: float = 1.0,
    gain_tol: float = 0.5,
    gap_tol: float = 15.0,
    loss_rise_tol: float = 5.0,
) -> OverfittingReport:
    """Judge a training history: ``classify(measure_history(history))``.

    drop_tol: mIoU points the validation metric must fall from its best to count as a decline.
    gain_tol: points gained over the last epochs (a fifth of the run, at least 2) for
        "still improving".
    gap_tol: train - val mIoU points above which a plateau is reported as a generalisation gap.
    loss_rise_tol: percent rise of the val loss over its minimum counting as a decline (used
        only without val mIoU).
    """
    return classify(measure_history(history), drop_tol, gain_tol, gap_tol, loss_rise_tol)


def curves_figure(history: list[dict], best_epoch: int | None = None):
    """Figure with loss (train vs val) and, when logged, mIoU (train vs val, in %)."""
    train_miou, val_miou = _as_points(_series(history, "train_miou"), _series(history, "val_miou"))
    losses = {"train": _series(history, "train_loss"), "val": _series(history, "val_loss")}
    mious = {"train": train_miou, "val": val_miou}
    has_miou = any(mious.values())
    fig = new_figure(10.0 if has_miou else 5.5, 3.8)
    axes = fig.subplots(1, 2 if has_miou else 1, squeeze=False)[0]
    panels = [(axes[0], losses, "loss")] + ([(axes[1], mious, "mIoU (%)")] if has_miou else [])
    for ax, series, label in panels:
        for name, s in series.items():
            if s:
                xs = sorted(s)
                ax.plot(xs, [s[x] for x in xs], marker="." if len(xs) < 50 else None, label=name)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"best ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if any(series.values()):
            ax.legend(fontsize=8)
    return fig


def plot_curves(history: list[dict], path: str | Path) -> Path:
    """Save training curves (loss and mIoU, train vs val, best epoch marked) as PNG."""
    best = analyse_history(history).best_epoch if len(history) >= 3 else None
    return save_figure(curves_figure(history, best), path)
