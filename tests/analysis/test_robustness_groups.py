"""Robustness split by training corruptions: seen in training vs held out (photometric only)."""

import json

import numpy as np
import pytest
import yaml

from pixelseg.analysis.report import _robustness_section
from pixelseg.analysis.robustness import RobustnessResult, run_robustness, trained_corruptions_of
from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.sample import Sample


def fixed_result(trained=("gaussian_noise", "jpeg")) -> RobustnessResult:
    rows = {
        "gaussian_noise": [0.8, 0.6],
        "shot_noise": [0.5, 0.3],
        "jpeg": [0.9, 0.7],
        "pixelate": [0.6, 0.4],
        "rotate": [0.95, 0.85],
    }
    return RobustnessResult(
        clean_miou=1.0 / 1.25,  # 0.8: relatives are x 1.25
        severities=(1, 3),
        miou=rows,
        num_samples=3,
        trained_corruptions=trained,
    )


def test_groups_list_the_right_corruptions_and_means():
    r = fixed_result()
    assert r.group_names() == {
        "seen_in_training": ["gaussian_noise", "jpeg"],
        "held_out": ["shot_noise", "pixelate"],  # rotate is geometric: in neither group
    }
    d = r.to_dict()
    assert d["trained_corruptions"] == ["gaussian_noise", "jpeg"]
    seen, held = d["groups"]["seen_in_training"], d["groups"]["held_out"]
    assert seen["corruptions"] == ["gaussian_noise", "jpeg"]
    assert seen["mean_miou"] == pytest.approx(0.75)
    assert seen["relative"] == pytest.approx(0.75 * 1.25)
    assert held["mean_miou"] == pytest.approx(0.45)
    assert held["relative"] == pytest.approx(0.45 * 1.25)
    assert d["ungrouped"] == ["rotate"]
    # The overall summary is unchanged by the split.
    assert d["mean_corrupted_miou"] == pytest.approx(
        np.mean([v for r in d["corruptions"].values() for v in r["miou"]])
    )


def test_round_trip_table_and_report():
    r = fixed_result()
    back = RobustnessResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.trained_corruptions == ("gaussian_noise", "jpeg")
    assert back.to_dict() == r.to_dict()
    table = r.table()
    assert "| **seen in training** (gaussian_noise, jpeg) |  |  | 75.0 | 0.938 |" in table
    assert "| **held out from training** (shot_noise, pixelate) |  |  | 45.0 | 0.562 |" in table
    html = _robustness_section(r.to_dict())
    assert "held out from training: shot_noise, pixelate" in html
    assert "<td>seen in training</td>" in html


def test_without_trained_corruptions_the_output_is_as_before():
    r = fixed_result(trained=None)
    d = r.to_dict()
    assert r.group_names() == {}
    assert not {"groups", "trained_corruptions", "ungrouped"} & set(d)
    assert "seen in training" not in r.table()
    assert RobustnessResult.from_dict(d).trained_corruptions is None
    assert fixed_result(trained=()).to_dict() == d


def test_run_robustness_records_the_trained_corruptions():
    mask = np.zeros((16, 20), np.int64)
    mask[:, 10:] = 1
    mask[0, 0] = IGNORE_INDEX
    samples = [Sample(image=np.full((16, 20, 3), 90, np.uint8), mask=mask, name="a")]
    result = run_robustness(
        lambda ims: [np.zeros(im.shape[:2], np.int64) for im in ims],
        samples,
        2,
        corruptions=["contrast", "gaussian_blur", "scale"],
        severities=(1,),
        progress=False,
        trained_corruptions=["contrast", "shot_noise"],  # shot_noise trained but not evaluated
    )
    assert result.group_names() == {"seen_in_training": ["contrast"], "held_out": ["gaussian_blur"]}
    assert result.to_dict()["trained_corruptions"] == ["contrast", "shot_noise"]


def test_trained_corruptions_of_reads_the_run_config(tmp_path):
    assert trained_corruptions_of(tmp_path) == ()  # no config.yaml
    cfg = {"augment": {"enabled": True, "corruptions": ["jpeg", "gaussian_blur"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert trained_corruptions_of(tmp_path) == ("jpeg", "gaussian_blur")
    cfg["augment"]["enabled"] = False  # augmentation off: the corruptions were never applied
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert trained_corruptions_of(tmp_path) == ()
