"""Overfitting verdicts for crafted histories; history loading and curve plots."""

import json

import numpy as np
import pytest

from pixelseg.analysis.overfitting import analyse_history, load_history, plot_curves
from pixelseg.errors import PixelsegError


def history(val_miou, train_miou=None, train_loss=None, val_loss=None):
    rows = []
    for i, v in enumerate(val_miou):
        row = {"epoch": i + 1, "val_miou": v}
        if train_miou is not None:
            row["train_miou"] = train_miou[i]
        if train_loss is not None:
            row["train_loss"] = train_loss[i]
        if val_loss is not None:
            row["val_loss"] = val_loss[i]
        rows.append(row)
    return rows


def peaked_at_31():
    """val mIoU rises to 0.70 at epoch 31, then falls to 0.66 at epoch 40."""
    rise = np.linspace(0.30, 0.70, 31)
    fall = np.linspace(0.70, 0.66, 10)[1:]
    return list(rise) + list(fall)


def test_overfitting():
    train = list(np.linspace(0.30, 0.95, 40))
    report = analyse_history(
        history(peaked_at_31(), train, train_loss=list(np.linspace(2, 0.1, 40)))
    )
    assert report.kind == "overfitting"
    assert report.verdict == (
        "val mIoU peaked at epoch 31 and fell 4.0 points while train mIoU kept rising: overfitting"
    )
    assert report.best_epoch == 31
    assert report.drop_from_best == pytest.approx(4.0)
    assert report.gap_at_best == pytest.approx(100 * (train[30] - 0.70))
    assert report.gap_at_end == pytest.approx(100 * (0.95 - 0.66))
    assert "best checkpoint" in report.advice
    json.dumps(report.to_dict())


def test_still_improving():
    val = [0.20 + 0.01 * e for e in range(20)]
    report = analyse_history(history(val, [v + 0.02 for v in val]))
    assert report.kind == "still_improving"
    assert report.verdict == (
        "val mIoU still improving at the last epoch (+4.0 points over the last 4 epochs): "
        "train longer"
    )
    assert report.best_epoch == 20


def test_train_and_val_agree():
    rng = np.random.default_rng(0)
    val = [0.3, 0.5, 0.58] + list(0.60 + rng.uniform(-0.001, 0.001, 17))
    train = [v + 0.02 for v in val]
    report = analyse_history(history(val, train))
    assert report.kind == "ok"
    assert report.verdict == "train and val agree: no sign of overfitting"
    assert report.gap_at_end == pytest.approx(2.0)


def test_trainer_history_without_train_miou_uses_the_train_loss():
    report = analyse_history(history(peaked_at_31(), train_loss=list(np.linspace(2, 0.1, 40))))
    assert report.kind == "overfitting"
    assert report.verdict.endswith("fell 4.0 points while train loss kept falling: overfitting")
    assert report.gap_at_best is None


def test_unstable_when_train_gets_worse_too():
    train = list(np.linspace(0.3, 0.9, 31)) + list(np.linspace(0.9, 0.5, 10)[1:])
    report = analyse_history(history(peaked_at_31(), train))
    assert report.kind == "unstable"
    assert "train mIoU fell too: unstable training" in report.verdict


def test_generalisation_gap_without_decline():
    val = [0.3, 0.5, 0.6] + [0.6] * 12
    report = analyse_history(history(val, [0.5, 0.8, 0.95] + [0.95] * 12))
    assert report.kind == "gap"
    assert "35.0 points below train mIoU" in report.verdict


def test_loss_only_history():
    val_loss = [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.65]
    rows = [
        {"epoch": i + 1, "train_loss": 1.0 - 0.1 * i, "val_loss": v, "val_miou": None}
        for i, v in enumerate(val_loss)
    ]
    report = analyse_history(rows)
    assert report.metric == "val_loss" and report.kind == "overfitting"
    assert report.verdict == (
        "val loss bottomed out at epoch 4 and rose 30.0 % while train loss kept falling: "
        "overfitting"
    )


def test_percent_scale_and_too_short():
    as_fraction = analyse_history(history(peaked_at_31(), list(np.linspace(0.3, 0.95, 40))))
    as_percent = analyse_history(
        history([100 * v for v in peaked_at_31()], list(np.linspace(30, 95, 40)))
    )
    assert as_fraction.verdict == as_percent.verdict
    short = analyse_history(history([0.3, 0.4]))
    assert short.kind == "too_short" and "too few" in short.verdict
    assert analyse_history([]).kind == "too_short"


def test_load_history_and_plot(tmp_path):
    rows = history(
        peaked_at_31(),
        list(np.linspace(0.3, 0.95, 40)),
        list(np.linspace(2, 0.1, 40)),
        list(np.linspace(2, 0.8, 40)),
    )
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_history(path) == rows
    out = plot_curves(rows, tmp_path / "curves.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    loss_only = [{"epoch": r["epoch"], "train_loss": r["train_loss"]} for r in rows]
    assert plot_curves(loss_only, tmp_path / "loss.png").exists()
    path.write_text('{"epoch": 1}\n{oops\n')
    with pytest.raises(PixelsegError, match="metrics.jsonl:2"):
        load_history(path)
    with pytest.raises(PixelsegError, match="not found"):
        load_history(tmp_path / "missing.jsonl")
