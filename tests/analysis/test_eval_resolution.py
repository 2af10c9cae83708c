"""`pixelseg eval` scores at the labels' own resolution, exactly as `pixelseg predict` segments
each image: a run trained at ``data.resize`` smaller than the data gives the same confusion
matrix and mIoU as predict's masks, read back from PNG, against the original label files.

Issue 15: eval used to resize the labels (nearest) down to the training size and score there.
"""

import html
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixelseg.cli.main import main
from pixelseg.data.imageio import write_png
from pixelseg.data.scenes import SCENE_CLASSES, generate_scene, write_scenes
from pixelseg.engine.loaders import collate_by_size

TINY = [
    "--model",
    "unet",
    "--no-plan",
    "--epochs",
    "1",
    "model.width=4",
    "model.depth=2",
    "train.batch_size=2",
    "train.lr=0.01",  # enough for 1 epoch to predict more than one class
    "train.device=cpu",
    "train.threads=1",
    "augment.enabled=false",
    "data.resize=[24, 32]",  # half the labels' size
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = write_scenes(
        tmp_path_factory.mktemp("data"), {"train": 4, "val": 3}, size=(48, 64), progress=False
    )
    # One validation image of another size: eval batches mix sizes at the labels' resolution.
    image, mask = generate_scene(777, (40, 56))
    write_png(root / "val" / "images" / "odd.png", image)
    write_png(root / "val" / "masks" / "odd.png", mask.astype(np.uint8), SCENE_CLASSES.colours)
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", "--quiet", "--data", str(root), "--out-dir", str(runs), "--name", "r"]
    assert main([*args, *TINY]) == 0
    return root, runs / "r"


def independent_confusion(pred_dir, mask_dir, num_classes: int) -> np.ndarray:
    """Confusion matrix (rows = ground truth) of predict's PNG masks against the label PNGs."""
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    for label_path in sorted(mask_dir.glob("*.png")):
        gt = np.asarray(Image.open(label_path)).astype(np.int64)  # palette indices = class ids
        pred = np.asarray(Image.open(pred_dir / f"{label_path.stem}_mask.png")).astype(np.int64)
        assert pred.shape == gt.shape  # predict writes masks at the image's own size
        keep = gt < num_classes
        conf += np.bincount(
            gt[keep] * num_classes + pred[keep], minlength=num_classes * num_classes
        ).reshape(num_classes, num_classes)
    return conf


def miou(conf: np.ndarray) -> float:
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    return float((tp[union > 0] / union[union > 0]).mean())


@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_eval_matches_predict_masks_at_label_resolution(trained, tmp_path, batch_size):
    root, run = trained
    assert main(["eval", str(run), "--split", "val", "--quiet", "--batch-size", batch_size]) == 0
    result = json.loads((run / "eval" / "val.json").read_text())
    preds = tmp_path / "preds"
    images = str(root / "val" / "images")
    assert main(["predict", str(run), images, "--out", str(preds), "--quiet"]) == 0

    nc = SCENE_CLASSES.num_classes
    conf = independent_confusion(preds, root / "val" / "masks", nc)
    assert conf.sum() == 3 * 48 * 64 + 40 * 56  # every label pixel, none resized away
    assert (conf.sum(0) > 0).sum() >= 2  # class boundaries in the upsampled predictions
    np.testing.assert_array_equal(np.asarray(result["confusion_matrix"]), conf)
    assert result["mean_iou"] == pytest.approx(miou(conf), abs=1e-12)
    assert result["resolution"] == "labels" and result["model_input_size"] == [24, 32]
    # The other outputs still come with it, measured at the same resolution.
    assert result["boundary"]["mean_f1"] is not None and result["calibration"]["ece"] >= 0
    assert result["loss"] > 0 and "miou_gap" in result["overfitting"]


def test_per_epoch_validation_is_at_label_resolution(trained):
    """The metrics row's val_miou is the same measurement as `pixelseg eval` of that epoch."""
    _, run = trained
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    after_training = json.loads((run / "eval" / "val.json").read_text())
    assert row["val_miou"] == pytest.approx(after_training["mean_iou"], abs=1e-12)
    assert row["val_loss"] == pytest.approx(after_training["loss"], rel=1e-5)
    assert "labels' own resolution" in html.unescape((run / "report.html").read_text())


def test_collate_by_size_groups_without_padding():
    a = (torch.zeros(3, 4, 5, dtype=torch.uint8), torch.zeros(4, 5, dtype=torch.int64))
    b = (torch.ones(3, 6, 5, dtype=torch.uint8), torch.ones(6, 5, dtype=torch.int64))
    groups = collate_by_size([a, b, a])
    assert [tuple(m.shape) for _, m in groups] == [(2, 4, 5), (1, 6, 5)]
    assert groups[1][0].shape == (1, 3, 6, 5) and int(groups[1][1].min()) == 1
