"""Robust training end to end: train a few steps with augment.corruptions on both augmentation
paths, then ``pixelseg robustness`` splits its summary into seen and held-out corruptions."""

import json

import pytest
import yaml

from pixelseg.cli.main import main
from pixelseg.data.scenes import write_scenes

TINY = [
    "model.width=4",
    "model.depth=2",
    "train.batch_size=4",
    "train.max_steps_per_epoch=2",
    "train.epochs=1",
    "augment.corruptions=[gaussian_noise, jpeg, gaussian_blur]",
    "augment.corruption_p=1.0",
]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    write_scenes(root, {"train": 8, "val": 2}, size=(32, 40), progress=False)
    return root


@pytest.mark.parametrize("on_device", ["false", "true"])
def test_train_with_corruptions_then_split_robustness(scenes, tmp_path, capsys, on_device):
    args = ["train", "--quiet", "--data", str(scenes), "--name", "rt"]
    args += ["--out-dir", str(tmp_path / "runs"), *TINY, f"augment.on_device={on_device}"]
    assert main(args) == 0
    run = tmp_path / "runs" / "rt"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["augment"]["corruptions"] == ["gaussian_noise", "jpeg", "gaussian_blur"]
    capsys.readouterr()
    robustness = ["robustness", str(run), "--max-images", "1", "--severities", "1", "--quiet"]
    corruptions = ["--corruptions", "gaussian_noise,jpeg,shot_noise,pixelate,rotate"]
    assert main(robustness + corruptions) == 0
    printed = capsys.readouterr().out
    assert "**seen in training** (gaussian_noise, jpeg)" in printed
    assert "**held out from training** (shot_noise, pixelate)" in printed
    rob = json.loads((run / "robustness" / "robustness.json").read_text())
    assert rob["groups"]["seen_in_training"]["corruptions"] == ["gaussian_noise", "jpeg"]
    assert rob["groups"]["held_out"]["corruptions"] == ["shot_noise", "pixelate"]
    assert rob["ungrouped"] == ["rotate"]
    assert "held out from training" in (run / "report.html").read_text()
