"""The epoch row: one typed record, whose JSON form is a line of metrics.jsonl."""

from __future__ import annotations

import dataclasses
import doctest
import json

from pixelseg.engine import epoch_record
from pixelseg.engine.epoch_record import HEADER, EpochRow, TrainEpoch
from pixelseg.engine.evaluate import EvalResult
from pixelseg.engine.trainer import Trainer
from pixelseg.metrics import ConfusionMatrix

# The keys of metrics.jsonl, in order: what the report, the overfitting diagnosis and the
# resume of older runs read.
KEYS = [
    "epoch",
    "train_loss",
    "train_pixel_accuracy",
    "train_miou",
    "val_loss",
    "val_pixel_accuracy",
    "val_miou",
    "lr",
    "time_s",
]


def test_doctest():
    assert doctest.testmod(epoch_record).failed == 0


def test_a_row_is_made_of_the_training_pass_and_the_evaluation():
    scores = dataclasses.replace(ConfusionMatrix(2).compute(), pixel_accuracy=0.7, mean_iou=0.4)
    row = EpochRow.of(3, TrainEpoch(0.5, 0.8, 0.6, 1e-3), EvalResult(scores, loss=0.9), 2.5)
    assert row.to_dict() == dict(
        zip(KEYS, [3, 0.5, 0.8, 0.6, 0.9, 0.7, 0.4, 1e-3, 2.5], strict=True)
    )
    assert list(row.to_dict()) == KEYS
    assert len(row.line()) == len(HEADER)  # the columns line up under the header


def test_a_run_logs_typed_rows_with_train_miou(make_cfg):
    tr = Trainer(make_cfg("rows", "train.epochs=2"), progress=False, log=lambda *a: None)
    result = tr.fit()
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [list(r) for r in logged] == [KEYS, KEYS]
    assert logged == result.history == [EpochRow(**r).to_dict() for r in logged]
    assert all(0.0 <= r["train_miou"] <= 1.0 for r in logged)
