import numpy as np
import pytest
import torch

from pixelseg.constants import IGNORE_INDEX
from pixelseg.metrics import ConfusionMatrix


def test_against_a_hand_computed_matrix():
    # gt:   0 0 1 1 2 255      pred: 0 1 1 1 0 2
    gt = torch.tensor([0, 0, 1, 1, 2, IGNORE_INDEX])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    assert cm.mat.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]  # ignore pixel not counted
    r = cm.compute()
    assert r.pixel_accuracy == pytest.approx(3 / 5)
    # class 0: tp 1, fp 1, fn 1 -> IoU 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0 -> 0
    assert r.per_class.iou == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert r.per_class.precision[1] == pytest.approx(2 / 3)
    assert r.per_class.precision[0] == pytest.approx(0.5)
    assert r.per_class.recall == pytest.approx([0.5, 1.0, 0.0])
    assert r.per_class.f1[1] == pytest.approx(0.8)
    assert r.mean_iou == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_miou_averages_only_classes_present():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    r = cm.compute()
    assert r.mean_iou == 1.0
    assert r.classes_averaged == [0, 1]
    assert r.per_class.iou[3] is None  # undefined, not 0 and not NaN (JSON-safe)


def test_accumulates_over_batches_like_one_big_batch():
    rng = np.random.default_rng(0)
    gt = torch.from_numpy(rng.integers(0, 5, (4, 16, 16)))
    pred = torch.from_numpy(rng.integers(0, 5, (4, 16, 16)))
    whole, parts = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, gt)
    for i in range(4):
        parts.update(pred[i], gt[i])
    assert torch.equal(whole.mat, parts.mat)
