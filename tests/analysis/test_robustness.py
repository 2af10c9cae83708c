"""Robustness runner: table shape, oracle = 1, hand-computed mIoU, determinism, outputs."""

import doctest
import json

import numpy as np
import pytest
import torch

from pixelseg.analysis import robustness
from pixelseg.analysis.corruptions import CORRUPTIONS, GEOMETRIC
from pixelseg.analysis.robustness import (
    RobustnessResult,
    confusion_matrix,
    mean_iou,
    per_image,
    run_robustness,
)
from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.sample import Sample
from pixelseg.errors import PixelsegError
from pixelseg.metrics import ConfusionMatrix

PALETTE = np.array([[100, 100, 100], [156, 156, 156]], np.uint8)  # close: noise confuses
PHOTOMETRIC = [n for n in CORRUPTIONS if n not in GEOMETRIC]


def make_samples() -> list[Sample]:
    """Three samples of distinct sizes (an oracle can recognise them by shape alone)."""
    samples = []
    for i, (h, w) in enumerate([(24, 32), (28, 20), (17, 33)]):
        mask = np.zeros((h, w), np.int64)
        mask[:, w // 2 :] = 1
        mask[0, 0] = IGNORE_INDEX  # void pixels must not count
        image = PALETTE[np.minimum(mask, 1)]
        samples.append(Sample(image=image, mask=mask, name=f"s{i}"))
    return samples


def oracle_for(samples):
    truth = {s.mask.shape: np.where(s.mask == IGNORE_INDEX, 0, s.mask) for s in samples}
    return lambda images: [truth[im.shape[:2]] for im in images]


def by_colour(images):
    """Decodes the class from brightness: exact on clean images, fooled by heavy corruption."""
    return [(im.mean(axis=2) > 127).astype(np.int64) for im in images]


def test_oracle_is_unaffected_by_photometric_corruptions():
    samples = make_samples()
    result = run_robustness(
        oracle_for(samples), samples, 2, corruptions=PHOTOMETRIC, progress=False, batch_size=2
    )
    assert result.clean_miou == 1.0
    assert set(result.miou) == set(PHOTOMETRIC)
    assert all(row == [1.0] * 5 for row in result.miou.values())
    assert result.relative_robustness == 1.0
    assert result.num_samples == 3


def test_table_shape():
    samples = make_samples()
    result = run_robustness(
        oracle_for(samples),
        samples,
        2,
        corruptions=["jpeg", "contrast"],
        severities=(1, 3),
        progress=False,
    )
    lines = result.table().splitlines()
    assert lines[0] == "| corruption | s1 | s3 | mean | relative |"
    assert len(lines) == 2 + 2 + 2  # header, rule, two corruptions, all corruptions, clean
    assert all(line.count("|") == 6 for line in lines)
    assert lines[2] == "| jpeg | 100.0 | 100.0 | 100.0 | 1.000 |"


def test_constant_predictor_hand_computed():
    # Half the labelled pixels are class 0, half class 1 (minus one void pixel); predicting 0
    # everywhere: IoU_0 = n0 / (n0 + n1), IoU_1 = 0, both present -> mIoU = IoU_0 / 2.
    samples = make_samples()
    n0 = sum(int((s.mask == 0).sum()) for s in samples)
    n1 = sum(int((s.mask == 1).sum()) for s in samples)
    zeros = per_image(lambda im: np.zeros(im.shape[:2], np.int64))
    result = run_robustness(zeros, samples, 2, corruptions=["brightness"], progress=False)
    assert result.clean_miou == pytest.approx(n0 / (n0 + n1) / 2)
    assert result.miou["brightness"] == [pytest.approx(result.clean_miou)] * 5


def test_geometric_corruptions_keep_labels_aligned():
    # A pixel-wise colour decoder is right wherever the mask moved with the image.
    samples = make_samples()
    result = run_robustness(by_colour, samples, 2, corruptions=sorted(GEOMETRIC), progress=False)
    assert result.clean_miou == 1.0
    assert min(min(row) for row in result.miou.values()) > 0.95


def test_noise_hurts_and_results_are_reproducible_and_order_free():
    samples = make_samples()
    full = run_robustness(
        by_colour, samples, 2, corruptions=["gaussian_noise", "contrast"], seed=3, progress=False
    )
    again = run_robustness(
        by_colour, samples, 2, corruptions=["gaussian_noise", "contrast"], seed=3, progress=False
    )
    alone = run_robustness(
        by_colour, samples, 2, corruptions=["gaussian_noise"], seed=3, progress=False
    )
    assert full.miou == again.miou
    assert full.miou["gaussian_noise"] == alone.miou["gaussian_noise"]
    assert full.miou["gaussian_noise"][-1] < 0.9 < full.clean_miou
    assert full.relative_robustness < 1.0


def test_to_dict_round_trip_and_plot(tmp_path):
    samples = make_samples()
    result = run_robustness(
        by_colour, samples, 2, corruptions=["pixelate", "rotate"], progress=False
    )
    d = json.loads(json.dumps(result.to_dict()))
    assert d["corruptions"]["pixelate"]["miou"] == result.miou["pixelate"]
    assert set(d) >= {
        "clean_miou",
        "severities",
        "mean_corrupted_miou",
        "relative_robustness",
        "num_samples",
        "miou_definition",
    }
    back = RobustnessResult.from_dict(d)
    assert back.miou == result.miou and back.clean_miou == result.clean_miou
    path = result.plot(tmp_path / "rob" / "robustness.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["robustness.png"]  # no temp file left


def test_custom_miou_fn_receives_the_split_confusion_matrix():
    samples = make_samples()
    seen = []

    def miou_fn(conf):
        seen.append(conf.copy())
        return 0.5

    result = run_robustness(
        by_colour,
        samples,
        2,
        corruptions=["jpeg"],
        severities=(2,),
        miou_fn=miou_fn,
        progress=False,
    )
    assert result.clean_miou == 0.5 and len(seen) == 2
    labelled = sum(int((s.mask != IGNORE_INDEX).sum()) for s in samples)
    assert seen[0].sum() == labelled and seen[0].shape == (2, 2)


def test_confusion_matrix_and_mean_iou():
    gt = np.array([[0, 0, 1], [1, IGNORE_INDEX, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, gt, 3)
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    # IoU: class 0 = 1/3, class 1 = 2/3, class 2 = 0/1
    assert mean_iou(conf) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    # The same reduction as every other mIoU of the project: nothing counted is 0.0, not NaN.
    assert mean_iou(np.zeros((2, 2))) == 0.0
    cm = ConfusionMatrix(3)
    cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
    np.testing.assert_array_equal(cm.mat.numpy(), conf)
    assert mean_iou(conf) == cm.compute().mean_iou


def test_a_split_without_a_labelled_pixel_scores_0_like_metrics():
    samples = make_samples()
    for s in samples:
        s.mask[:] = IGNORE_INDEX
    result = run_robustness(
        by_colour, samples, 2, corruptions=["jpeg"], severities=(2,), progress=False
    )
    assert result.clean_miou == 0.0 and result.miou == {"jpeg": [0.0]}
    assert ConfusionMatrix(2).compute().mean_iou == 0.0


def test_errors():
    samples = make_samples()
    with pytest.raises(PixelsegError, match="unknown corruption"):
        run_robustness(by_colour, samples, 2, corruptions=["snow"], progress=False)
    with pytest.raises(PixelsegError, match="severities"):
        run_robustness(by_colour, samples, 2, severities=(0,), progress=False)
    with pytest.raises(PixelsegError, match="no samples"):
        run_robustness(by_colour, [], 2, progress=False)
    with pytest.raises(ValueError, match="returned"):
        run_robustness(lambda ims: [], samples, 2, corruptions=["jpeg"], progress=False)


def test_docstring_examples():
    assert doctest.testmod(robustness).failed == 0
