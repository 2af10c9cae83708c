"""Boundary F1: perfect = 1, a shifted square checked by hand and by brute force, void, pooling."""

import numpy as np
import pytest

from pixelseg.analysis.boundary import BoundaryF1, boundary_f1, boundary_pixels
from pixelseg.constants import IGNORE_INDEX


def square(x0: int, size: int = 4, y0: int = 3, shape=(10, 10)) -> np.ndarray:
    m = np.zeros(shape, np.int64)
    m[y0 : y0 + size, x0 : x0 + size] = 1
    return m


def brute_force(pred, gt, c, tol):
    """Straight from the definition: loops and explicit distances, no scipy."""

    def edges(m):
        pts = []
        h, w = m.shape
        for y in range(h):
            for x in range(w):
                if m[y, x] != c:
                    continue
                for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and m[yy, xx] not in (c, IGNORE_INDEX):
                        pts.append((y, x))
                        break
        return np.array(pts, float).reshape(-1, 2)

    bp, bg = edges(pred), edges(gt)

    def matched(a, b):
        if len(a) == 0 or len(b) == 0:
            return 0
        d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min(1)
        return int((d <= tol).sum())

    p = matched(bp, bg) / len(bp) if len(bp) else 0.0
    r = matched(bg, bp) / len(bg) if len(bg) else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def test_boundary_pixels_ignore_frame_and_void():
    m = square(3)
    edge = boundary_pixels(m)
    assert edge.sum() == 12 + 16  # square perimeter (12) + background ring without corners (16)
    # corners of the surrounding ring touch the square only diagonally: not boundaries
    assert not edge[2, 2] and edge[2, 3]
    assert not boundary_pixels(np.zeros((5, 5), np.int64)).any()  # the frame is no edge
    void = np.full((4, 4), IGNORE_INDEX)
    void[:, :2] = 1
    assert not boundary_pixels(void).any()  # a contour against void is not a boundary


def test_perfect_prediction_scores_one():
    gt = square(3)
    gt[0, :] = 2
    scores = boundary_f1(gt.copy(), gt, num_classes=3)
    assert scores["f1"] == [1.0, 1.0, 1.0]
    assert scores["mean_f1"] == scores["mean_precision"] == scores["mean_recall"] == 1.0
    assert scores["classes_averaged"] == [0, 1, 2]


def test_shifted_square_hand_checked():
    # gt: 4x4 square at columns 3..6; pred: the same square 3 columns right (6..9, touching the
    # frame, whose side is no boundary). Tolerance 2 px.
    # pred boundary of class 1: rows 3 and 6 at columns 6..9 (8 px) + column 6 rows 4, 5 = 10 px;
    #   matched: columns 6, 7, 8 of both rows (distance 0, 1, 2) + column 6 rows 4, 5 -> 8.
    # gt boundary: 12 perimeter px; matched: columns 4..6 of rows 3 and 6 (6) + column 6
    #   rows 4, 5 (2) -> 8; column 3 is 3 px away from the nearest predicted edge.
    # P = 8/10, R = 8/12, F1 = 2PR/(P+R) = 16/22.
    gt, pred = square(3), square(6)
    scores = boundary_f1(pred, gt, num_classes=2, tolerance=2)
    assert scores["precision"][1] == pytest.approx(0.8)
    assert scores["recall"][1] == pytest.approx(8 / 12)
    assert scores["f1"][1] == pytest.approx(16 / 22)
    for c in (0, 1):
        p, r, f = brute_force(pred, gt, c, 2)
        assert (scores["precision"][c], scores["recall"][c], scores["f1"][c]) == pytest.approx(
            (p, r, f)
        )
    assert scores["mean_f1"] < 1.0
    # A tolerance of 3 px forgives the shift completely; 0 px finds only the shared column (4 px).
    assert boundary_f1(pred, gt, 2, tolerance=3)["f1"][1] == 1.0
    assert boundary_f1(pred, gt, 2, tolerance=0)["precision"][1] == pytest.approx(4 / 10)


def test_random_maps_match_brute_force():
    rng = np.random.default_rng(0)
    gt = np.kron(rng.integers(0, 3, (4, 5)), np.ones((4, 4), np.int64))
    pred = gt.copy()
    pred[rng.random(gt.shape) < 0.08] = 1
    gt[:3, :3] = IGNORE_INDEX
    scores = boundary_f1(pred, gt, num_classes=3, tolerance=1.5)
    masked = np.where(gt == IGNORE_INDEX, IGNORE_INDEX, pred)
    for c in range(3):
        assert scores["f1"][c] == pytest.approx(brute_force(masked, gt, c, 1.5)[2])


def test_void_pixels_do_not_count():
    gt = square(3)
    gt[:, 8:] = IGNORE_INDEX
    pred = gt.copy()
    pred[:, 8:] = 1  # anything under void is fine
    assert boundary_f1(pred, gt, 2)["f1"] == [1.0, 1.0]


def test_missing_class_scores_zero_and_absent_class_is_none():
    gt = square(3)
    scores = boundary_f1(np.zeros_like(gt), gt, num_classes=3)
    assert scores["precision"][1] == 0.0 and scores["recall"][1] == 0.0 and scores["f1"][1] == 0
    assert scores["f1"][2] is None and scores["classes_averaged"] == [0, 1]


def test_pooled_over_images_and_batches():
    acc = BoundaryF1(num_classes=2, tolerance=2)
    acc.update(square(3), square(3))  # perfect: 12 + 16 boundary px, all matched
    acc.update(square(6), square(3))  # the shifted square above
    scores = acc.compute()
    # class 1 pooled: precision (12 + 8) / (12 + 10), recall (12 + 8) / (12 + 12)
    assert scores["precision"][1] == pytest.approx(20 / 22)
    assert scores["recall"][1] == pytest.approx(20 / 24)
    assert scores["f1_per_image"][1] == pytest.approx((1.0 + 16 / 22) / 2)
    batched = BoundaryF1(num_classes=2, tolerance=2)
    batched.update(np.stack([square(3), square(6)]), np.stack([square(3), square(3)]))
    assert batched.compute() == scores


def test_tolerance_as_fraction_of_diagonal():
    gt, pred = square(3), square(6)
    # diagonal of 10x10 = 14.14 px; 0.15 of it = 2.12 px -> same matches as 2 px
    frac = BoundaryF1(2, tolerance_fraction=0.15)
    frac.update(pred, gt)
    assert frac.compute()["f1"][1] == pytest.approx(16 / 22)
    assert "diagonal" in frac.compute()["tolerance"]
