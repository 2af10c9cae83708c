"""train.time_budget_minutes: the number of epochs follows the measured epoch time."""

from __future__ import annotations

import pytest

from pixelseg.engine.budget import TimeBudget, end_of_run_seconds
from pixelseg.engine.trainer import train
from pixelseg.errors import PixelsegError


def test_epochs_that_fit_follow_the_measured_epochs():
    budget = TimeBudget(seconds=100.0, started=0.0)
    budget.elapsed = lambda: 30.0  # 30 s spent: set-up and 3 epochs of 8 s
    budget.epoch_seconds = [10.0, 8.0, 8.0]
    # (100 - 30 - 14 end) / ~8.67 s per epoch = 6.5 more epochs: 6 whole ones fit -> 9 in all
    assert budget.epochs_that_fit(done=3, end_seconds=14.0) == 9
    assert budget.epochs_that_fit(done=3, end_seconds=20.0) == 8  # 5.8 more: 5 whole ones
    budget.elapsed = lambda: 99.0  # over budget: stop after what is done
    assert budget.epochs_that_fit(done=3, end_seconds=14.0) == 3


def test_end_of_run_estimate_scales_with_the_images_it_scores():
    assert end_of_run_seconds(10.0, 100, 400) == pytest.approx(0.1 * 2 * 500 + 10)
    assert end_of_run_seconds(10.0, 100, 5000) == pytest.approx(0.1 * 2 * 1100 + 10)


def test_a_budget_refits_the_epochs_and_the_schedule(make_cfg, monkeypatch):
    logs = []
    # 4 epochs to start with; a budget that has room for far more stretches the run (capped
    # here by a generous per-epoch time, so the test stays short) and decays the lr with it.
    monkeypatch.setattr(TimeBudget, "epochs_that_fit", lambda self, done, end: 3)
    result = train(
        make_cfg("budget", "train.epochs=5", "train.time_budget_minutes=0.5"),
        progress=False,
        log=logs.append,
    )
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert any("3 epochs fit" in line for line in logs)
    assert result.history[-1]["lr"] < result.history[0]["lr"]


def test_budget_must_be_positive(make_cfg):
    with pytest.raises(PixelsegError, match="train.time_budget_minutes"):
        make_cfg("bad", "train.time_budget_minutes=0")
