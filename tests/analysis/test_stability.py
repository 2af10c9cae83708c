"""Prediction consistency, seed summaries and calibration, on hand-computed toys."""

import doctest
import json

import numpy as np
import pytest

from pixelseg.analysis import stability
from pixelseg.analysis.stability import (
    CalibrationAccumulator,
    CalibrationResult,
    expected_calibration_error,
    plot_reliability,
    prediction_consistency,
    summarize_seeds,
)
from pixelseg.constants import IGNORE_INDEX


def random_images(n=3, h=16, w=20):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w + i, 3), dtype=np.uint8) for i in range(n)]


def per_pixel(images):
    """Depends only on each pixel's own colour: exactly equivariant to flips and shifts."""
    return [(im[..., 0] > 127).astype(np.int64) for im in images]


def left_half(images):
    """Class 1 on the left half of whatever it is given: position, not content."""
    out = []
    for im in images:
        w = im.shape[1]
        out.append(np.broadcast_to(np.arange(w) < w / 2, im.shape[:2]).astype(np.int64))
    return out


def test_equivariant_predictor_is_fully_consistent():
    result = prediction_consistency(per_pixel, random_images(), shift=3, scales=())
    assert result.overall == {"hflip": 1.0, "shift": 1.0}
    assert result.mean == 1.0
    assert all(row == {"hflip": 1.0, "shift": 1.0} for row in result.per_image)


def test_positional_predictor_hand_computed():
    image = random_images(1, 16, 20)[0]
    result = prediction_consistency(left_half, [image], shift=3, scales=(0.5,))
    # hflip: the flipped-back prediction is the right half, the original the left: 0 agree.
    assert result.overall["hflip"] == 0.0
    # shift 3: the 17-wide crop predicts columns 0..8; the original, seen from the crop,
    # predicts columns 0..6 (original columns 3..9): columns 7 and 8 disagree -> 15/17.
    assert result.overall["shift"] == pytest.approx(15 / 17)
    # scale 0.5: 10 wide, left 5 columns; nearest back to 20 gives the left 10 columns exactly.
    assert result.overall["scale0.5"] == 1.0
    assert result.transforms == ["hflip", "shift", "scale0.5"]


def test_pooling_weighs_pixels():
    small, big = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 12, 3), np.uint8)

    def flaky(images):  # wrong on the mirrored copy of the small image only
        return [
            np.full(im.shape[:2], int(im.shape[1] == 4 and k == 1), np.int64)
            for k, im in enumerate(images)
        ]

    result = prediction_consistency(flaky, [small, big], shift=0, scales=())
    assert [row["hflip"] for row in result.per_image] == [0.0, 1.0]
    assert result.overall["hflip"] == pytest.approx(48 / 64)
    json.dumps(result.to_dict())
    assert "| hflip | 75.00 |" in result.table()


def test_rescale_of_equivariant_predictor_is_nearly_consistent():
    # A smooth image: bilinear resampling barely changes colours, so agreement is high.
    yy, xx = np.mgrid[0:32, 0:40]
    image = np.stack([xx * 6, yy * 7, xx + yy], -1).astype(np.uint8)
    result = prediction_consistency(per_pixel, [image], scales=(0.9, 1.1))
    assert result.overall["scale0.9"] > 0.9 and result.overall["scale1.1"] > 0.9


def test_summarize_seeds():
    runs = [
        {"miou": 0.5, "val": {"loss": 1.0}, "name": "a", "per_class": [1, 2]},
        {"miou": 0.6, "val": {"loss": 2.0}},
        {"miou": 0.7, "val": {"loss": float("nan")}, "flag": True},
    ]
    s = summarize_seeds(runs)
    assert set(s) == {"miou", "val.loss"}  # strings, lists, bools skipped
    assert s["miou"]["mean"] == pytest.approx(0.6)
    assert s["miou"]["std"] == pytest.approx(0.1)  # sample std, ddof=1
    assert (s["miou"]["min"], s["miou"]["max"], s["miou"]["n"]) == (0.5, 0.7, 3)
    assert s["val.loss"]["n"] == 2 and s["val.loss"]["mean"] == 1.5
    assert summarize_seeds([{"miou": 0.4}])["miou"]["std"] == 0.0


def two_class(confidences, correct):
    """(N, 2) probabilities with top-1 class 0 at the given confidence, labels right or wrong."""
    c = np.asarray(confidences, dtype=np.float64)
    probs = np.stack([c, 1 - c], axis=1)
    labels = np.where(np.asarray(correct), 0, 1)
    return probs, labels


def test_ece_of_a_perfectly_calibrated_toy_is_zero():
    # 10 pixels at 80 % confidence, 8 right; 5 pixels at 60 %, 3 right: accuracy = confidence.
    probs, labels = two_class([0.8] * 10 + [0.6] * 5, [1] * 8 + [0] * 2 + [1] * 3 + [0] * 2)
    result = expected_calibration_error(probs, labels, n_bins=10)
    assert result.ece == pytest.approx(0.0, abs=1e-12)
    assert result.mce == pytest.approx(0.0, abs=1e-12)
    assert result.count == 15
    assert result.bin_count[7] == 10 and result.bin_count[5] == 5  # (0.7, 0.8], (0.5, 0.6]
    assert result.bin_accuracy[7] == pytest.approx(0.8)


def test_ece_of_overconfident_toys():
    # 90 % sure, 60 % right: ECE = 0.3.
    probs, labels = two_class([0.9] * 10, [1] * 6 + [0] * 4)
    assert expected_calibration_error(probs, labels).ece == pytest.approx(0.3)
    # 4 px at 0.9 with 2 right (gap 0.4), 6 px at 0.7 all right (gap 0.3):
    # ECE = 0.4 * 0.4 + 0.6 * 0.3 = 0.34, MCE = 0.4.
    probs, labels = two_class([0.9] * 4 + [0.7] * 6, [1, 1, 0, 0] + [1] * 6)
    result = expected_calibration_error(probs, labels, n_bins=10)
    assert result.ece == pytest.approx(0.34)
    assert result.mce == pytest.approx(0.4)


def test_image_layout_ignore_and_accumulation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5, 6))  # (B, C, H, W)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 3, (2, 5, 6))
    labels[0, 0, :] = IGNORE_INDEX
    # One shot on the batch == image by image == flattened (N, C) without the void pixels.
    batch = expected_calibration_error(probs, labels)
    acc = CalibrationAccumulator()
    other = CalibrationAccumulator()
    acc.update(probs[0], labels[0])
    other.update(probs[1], labels[1])
    acc.merge(other)
    flat_p = np.moveaxis(probs, 1, -1).reshape(-1, 3)
    flat_l = labels.reshape(-1)
    keep = flat_l != IGNORE_INDEX
    flat = expected_calibration_error(flat_p[keep], flat_l[keep])
    assert batch.count == acc.compute().count == flat.count == 60 - 6
    assert batch.ece == pytest.approx(acc.compute().ece) == pytest.approx(flat.ece)
    # Brute force over bins.
    conf, pred = flat_p[keep].max(1), flat_p[keep].argmax(1)
    ok = pred == flat_l[keep]
    bins = np.clip(np.ceil(conf * 15) - 1, 0, 14)
    ece = sum(
        abs(ok[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
        for b in range(15)
        if (bins == b).any()
    )
    assert batch.ece == pytest.approx(ece)


def test_reliability_round_trip_and_plot(tmp_path):
    probs, labels = two_class([0.9] * 4 + [0.7] * 6, [1, 1, 0, 0] + [1] * 6)
    result = expected_calibration_error(probs, labels, n_bins=10)
    d = json.loads(json.dumps(result.to_dict()))  # NaN bins become null
    assert d["bins"]["accuracy"][0] is None
    back = CalibrationResult.from_dict(d)
    assert back.ece == result.ece and back.bin_count == result.bin_count
    path = plot_reliability(d, tmp_path / "reliability.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_bad_shapes():
    with pytest.raises(ValueError):
        expected_calibration_error(np.ones((2, 3)), np.zeros(3))
    with pytest.raises(ValueError):
        expected_calibration_error(np.ones(3), np.zeros(3))


def test_docstring_examples():
    assert doctest.testmod(stability).failed == 0
