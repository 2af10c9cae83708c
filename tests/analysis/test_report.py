"""The run report: one self-contained HTML file with every section; renders in Chromium."""

import re
import subprocess

import numpy as np
import pytest

from pixelseg.analysis.report import write_report
from pixelseg.analysis.robustness import RobustnessResult
from pixelseg.analysis.stability import ConsistencyResult, expected_calibration_error
from pixelseg.constants import IGNORE_INDEX

NAMES = ["background", "car", "tree"]


def full_inputs() -> dict:
    rng = np.random.default_rng(0)
    epochs = 12
    history = [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "val_loss": 1.0 + 0.02 * (e - 8) ** 2,
            "val_miou": 0.6 - 0.002 * (e - 8) ** 2,
            "train_miou": 0.5 + 0.03 * e,
        }
        for e in range(1, epochs + 1)
    ]
    conf = np.array([[50, 3, 2], [4, 30, 1], [0, 0, 0]])
    eval_result = {
        "split": "test",
        "pixel_accuracy": 0.888,
        "mean_iou": 0.66,
        "mean_f1": 0.7,
        "classes_averaged": [0, 1],
        "per_class": {
            "precision": [0.93, 0.88, None],
            "recall": [0.91, 0.86, None],
            "iou": [0.85, 0.77, None],
            "f1": [0.92, 0.87, None],
            "pixels": [55, 35, 0],
        },
        "confusion_matrix": conf.tolist(),
        "overfitting": {"train_miou": 0.8, "eval_miou": 0.66, "miou_gap": 0.14},
    }
    robustness = RobustnessResult(
        clean_miou=0.66,
        severities=(1, 2, 3, 4, 5),
        num_samples=4,
        miou={"gaussian_noise": [0.6, 0.5, 0.4, 0.3, 0.2], "rotate": [0.65, 0.6, 0.55, 0.5, 0.45]},
    )
    logits = rng.normal(size=(3, 8, 8)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(0)
    calibration = expected_calibration_error(probs, rng.integers(0, 3, (8, 8)))
    consistency = ConsistencyResult(["hflip", "shift"], [], {"hflip": 0.97, "shift": 0.95})
    boundary = {
        "precision": [0.9, 0.7, None],
        "recall": [0.8, 0.6, None],
        "f1": [0.85, 0.65, None],
        "mean_precision": 0.8,
        "mean_recall": 0.7,
        "mean_f1": 0.75,
        "tolerance": "2 px",
    }
    examples = []
    for i in range(8):
        image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        gt = np.zeros((24, 32), np.int64)
        gt[4:20, 8:24] = 1
        gt[0, :] = IGNORE_INDEX
        pred = np.roll(gt, i, axis=1)
        colour = np.zeros((24, 32, 3), np.uint8)  # colour images are accepted as well
        colour[pred == 1] = (255, 0, 0)
        examples.append(
            {
                "image": image,
                "gt": gt,
                "pred": colour if i % 2 else pred,
                "name": f"img_{i}.png",
                "miou": 1.0 - 0.1 * i,
            }
        )
    return dict(
        history=history,
        eval_result=eval_result,
        robustness=robustness,
        calibration=calibration.to_dict(),
        consistency=consistency,
        boundary=boundary,
        examples=examples,
        summary_text="UNet: 1.9 M parameters <small>",
        config_text="model: unet\ntrain:\n  epochs: 12\n",
    )


def test_full_report(tmp_path):
    path = write_report(tmp_path, class_names=NAMES, **full_inputs())
    assert path == tmp_path / "report.html"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left
    page = path.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,', page)
    # curves, per-class bars, confusion matrix, 6 examples (3 best + 3 worst), robustness,
    # reliability diagram
    assert len(images) == 1 + 2 + 6 + 1 + 1
    assert "http://" not in page and "https://" not in page  # self-contained
    for text in (
        "Training",
        "Evaluation (test)",
        "Predictions",
        "Best predicted",
        "Worst predicted",
        "Robustness to corruptions",
        "Calibration",
        "Prediction consistency",
        "Boundary F1 (tolerance 2 px)",
        "Configuration",
        "img_0.png",
        "img_7.png",
        "gaussian_noise",
        "epochs: 12",
    ):
        assert text in page, text
    assert "img_4.png" not in page  # neither among the 3 best nor the 3 worst
    # Tables: per-class metrics (absent class shown as a dash) and the robustness rows.
    assert "<td>car</td><td>88.0</td><td>86.0</td><td>77.0</td><td>87.0</td><td>35</td>" in page
    assert "<td>tree</td><td>–</td>" in page
    assert "<td>gaussian_noise</td><td>60.0</td><td>50.0</td>" in page
    assert "val mIoU peaked at epoch 8" in page and "overfitting" in page
    assert "&lt;small&gt;" in page  # text is escaped


def test_minimal_report_has_curves_only(tmp_path):
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_miou": 0.1 * e}
        for e in range(1, 6)
    ]
    path = write_report(
        tmp_path / "run", history=history, class_names=["a", "b"], filename="r.html"
    )
    page = path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1
    assert "still improving" in page and "Robustness" not in page
    empty = write_report(tmp_path / "empty", history=[], class_names=["a"])
    assert "No training history" in empty.read_text(encoding="utf-8")


def test_report_renders_in_headless_chromium(tmp_path, chromium):
    path = write_report(tmp_path / "run", class_names=NAMES, **full_inputs())
    shot = tmp_path / "shot.png"
    cmd = [
        chromium.path,
        "--headless",
        *chromium.flags,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
        f"--screenshot={shot}",
        path.resolve().as_uri(),
    ]
    try:
        subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish rendering in 90 s")
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:4] == b"\x89PNG"
