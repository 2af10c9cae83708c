"""Instances from a known class map; uncertainty maps."""

import doctest
import json

import numpy as np
import pytest

from pixelseg.analysis import instances as instances_module
from pixelseg.analysis.instances import (
    extract_instances,
    instance_overlay,
    instances_to_json,
    uncertainty_map,
    uncertainty_to_image,
)
from pixelseg.constants import IGNORE_INDEX


def known_map() -> np.ndarray:
    m = np.zeros((12, 16), np.int64)
    m[1:5, 2:7] = 1  # rectangle 4 x 5 = 20 px, bbox (2, 1, 7, 5)
    m[5:8, 7:9] = 1  # touches the rectangle only at a corner: 6 px, joined by 8-connectivity
    m[8:11, 10:15] = 2  # 15 px, bbox (10, 8, 15, 11)
    m[1, 14:16] = 2  # 2 px fragment: dropped by min_area=3
    m[10:12, 0:3] = IGNORE_INDEX  # void is never an object
    return m


def test_known_regions_areas_and_boxes():
    found = extract_instances(known_map(), min_area=3)
    summary = [(i.id, i.class_id, i.area, i.bbox) for i in found]
    assert summary == [(1, 1, 26, (2, 1, 9, 8)), (2, 2, 15, (10, 8, 15, 11))]
    assert found[0].mask.shape == (7, 7)
    assert found[0].full_mask().sum() == 26
    expected = known_map() == 2
    expected[1] = False  # without the dropped fragment
    np.testing.assert_array_equal(found[1].full_mask(), expected)
    assert all(i.confidence is None for i in found)


def test_four_connectivity_splits_corner_touching_regions_and_fragments_can_stay():
    found = extract_instances(known_map(), min_area=1, connectivity=4)
    summary = [(i.class_id, i.area, i.bbox) for i in found]
    assert summary == [
        (1, 20, (2, 1, 7, 5)),
        (1, 6, (7, 5, 9, 8)),
        (2, 2, (14, 1, 16, 2)),
        (2, 15, (10, 8, 15, 11)),
    ]


def test_background_classes_param():
    found = extract_instances(known_map(), min_area=3, ignore_classes=(1,))
    assert sorted(i.class_id for i in found) == [0, 2]


def test_mean_confidence():
    m = known_map()
    probs = np.full((3, *m.shape), 0.1)
    probs[1][m == 1] = 0.7
    probs[1, 1, 2] = 0.2  # one pixel of the 26 is less sure
    probs[2][m == 2] = 0.9
    found = extract_instances(m, probs, min_area=3)
    assert found[0].confidence == pytest.approx((25 * 0.7 + 0.2) / 26)
    assert found[1].confidence == pytest.approx(0.9)


def test_json_with_rle_round_trip():
    m = known_map()
    found = extract_instances(m, min_area=3)
    records = json.loads(json.dumps(instances_to_json(found, ["bg", "car", "tree"], True)))
    assert records[0]["class_name"] == "car" and records[0]["bbox"] == [2, 1, 9, 8]
    assert records[1]["centroid"] == [12.0, 9.0]
    rle = records[1]["mask_rle"]
    flat, value = [], 0
    for run in rle["counts"]:
        flat += [value] * run
        value = 1 - value
    decoded = np.array(flat, bool).reshape(rle["size"], order="F")
    np.testing.assert_array_equal(decoded, found[1].full_mask())


def test_overlay_colours_instances_and_leaves_the_rest():
    m = known_map()
    image = np.full((*m.shape, 3), 128, np.uint8)
    found = extract_instances(m, min_area=3)
    out = instance_overlay(image, found)
    assert out.shape == image.shape and out.dtype == np.uint8
    outside = ~(found[0].full_mask() | found[1].full_mask())
    np.testing.assert_array_equal(out[outside], image[outside])
    # Outlines are solid, in a different colour per instance.
    assert not np.array_equal(out[1, 2], out[8, 10])
    assert not np.array_equal(out[1, 2], image[1, 2])


def test_uncertainty_maps():
    probs = np.zeros((4, 2, 2))
    probs[:, 0, 0] = 0.25  # uniform: maximal uncertainty
    probs[2, 0, 1] = 1.0  # one-hot: none
    probs[:2, 1, 0] = 0.5  # tie of two
    probs[:, 1, 1] = [0.7, 0.1, 0.1, 0.1]
    ent = uncertainty_map(probs, "entropy")
    assert ent[0, 0] == pytest.approx(1.0) and ent[0, 1] == pytest.approx(0.0, abs=1e-9)
    assert ent[1, 0] == pytest.approx(0.5)  # log 2 / log 4
    margin = uncertainty_map(probs, "margin")
    np.testing.assert_allclose(margin, [[1.0, 0.0], [1.0, 0.4]])
    img = uncertainty_to_image(ent)
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert not np.array_equal(img[0, 0], img[0, 1])
    with pytest.raises(ValueError):
        uncertainty_map(probs, "variance")


def test_docstring_examples():
    assert doctest.testmod(instances_module).failed == 0
