"""LabelMe and YOLO segmentation labels: shapes painted in order, the background rule, and a
one-line error naming the file for every kind of bad label (read, train and check-data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import LABELME_SHAPES, H, W, save_rgb, write_labelme

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.check import check_dataset
from pixelseg.data.formats import open_split
from pixelseg.data.polygons import Shape, polygon_pixels, rasterize
from pixelseg.errors import PixelsegError

IG = IGNORE_INDEX


def problems(root) -> list[str]:
    return [f"{Path(path).name}: {msg}" for path, msg in check_dataset(root).problems]


def test_a_polygon_covers_the_pixels_whose_centres_it_holds():
    square = polygon_pixels([(4, 4), (12, 4), (12, 12), (4, 12)], H, W)
    assert square.sum() == 64 and square[4:12, 4:12].all()
    # a ring as one polygon that goes round the hole backwards (how a hole is drawn)
    ring = [(2, 2), (14, 2), (14, 14), (2, 14), (2, 2), (6, 6), (6, 10), (10, 10), (10, 6), (6, 6)]
    mask = polygon_pixels(ring, H, W)
    assert mask.sum() == 12 * 12 - 4 * 4 and not mask[6:10, 6:10].any()
    later_wins = rasterize(
        [Shape(1, "rectangle", ((0, 0), (8, 8))), Shape(2, "rectangle", ((4, 4), (8, 8)))], H, W, IG
    )
    assert (later_wins == 1).sum() == 48 and (later_wins == 2).sum() == 16


def test_labelme_shapes_in_order_over_ignored_pixels(labelme_root):
    source = open_split(labelme_root, "train")
    assert source.classes.names == ["car", "person", "road"]  # sorted labels found
    mask = source[0].mask
    assert mask.shape == (H, W)
    assert (mask[12:, :4] == 2).all() and (mask[8:16, 4:12] == 0).all()  # car over road
    assert mask[6, 24] == 1 and mask[0, 0] == IG  # the disc; nothing covers the corner
    assert (mask[:8, :16] == IG).all()


def test_labelme_background_class_first_takes_uncovered_pixels(labelme_root):
    (labelme_root / "classes.txt").write_text("_background_\nroad\ncar\nperson\n")
    mask = open_split(labelme_root, "val")[1].mask
    assert mask[0, 0] == 0 and mask[12, 20] == 1 and mask[10, 5] == 2 and mask[6, 24] == 3


def test_labelme_split_lists(tmp_path):
    root = tmp_path / "flat"
    for i in range(3):
        write_labelme(root / f"img{i}.json", LABELME_SHAPES, seed=i)
    (root / "train.txt").write_text("img0\nimg1.png\n")
    (root / "val.txt").write_text("img2\n")
    assert [s.name for s in open_split(root, "train")] == ["img0", "img1"]
    assert len(open_split(root, "val")) == 1


@pytest.mark.parametrize(
    "shape, message",
    [
        ({"label": "bus", "points": [[1, 1], [5, 1], [5, 5]]}, "label is not a class"),
        ({"label": "car", "points": [[1, 1], [50, 1], [5, 5]]}, "point (50, 1) is outside"),
        ({"label": "car", "points": [[1, 1], [5, 1]]}, "a polygon needs at least 3 points"),
        ({"label": "car", "shape_type": "mask", "points": [[1, 1], [5, 5]]}, "not read"),
        ({"label": "car", "points": "nope"}, "'points' is not a list"),
    ],
)
def test_labelme_bad_shapes_name_the_file(labelme_root, shape, message):
    (labelme_root / "classes.txt").write_text("car\nperson\nroad\n")
    bad = write_labelme(labelme_root / "val" / "val1.json", [*LABELME_SHAPES, shape], seed=1)
    with pytest.raises(PixelsegError, match="val1.json: shape 5") as e:
        open_split(labelme_root, "val")[1]
    assert message in str(e.value) and "\n" not in str(e.value)
    assert any(
        p.startswith(f"{bad.name}: shape 5") and message in p for p in problems(labelme_root)
    )


def test_labelme_unparsable_empty_and_orphan_files_are_named(labelme_root):
    (labelme_root / "val" / "val0.json").write_text("")
    (labelme_root / "val" / "val1.json").write_text('{"shapes": 3}')
    save_rgb(labelme_root / "train" / "lonely.png")
    (labelme_root / "train" / "ghost.json").write_text(json.dumps({"shapes": []}))
    found = problems(labelme_root)
    assert any(p.startswith("val0.json: not a readable LabelMe JSON file") for p in found)
    assert any(p.startswith("val1.json: not a LabelMe file (no 'shapes' list)") for p in found)
    assert any(p.startswith("lonely.png: image has no LabelMe JSON") for p in found)
    assert any(p.startswith("ghost.json: LabelMe JSON without an image") for p in found)


def test_yolo_polygons_with_a_background_class(yolo_root):
    source = open_split(yolo_root, "train")
    assert source.classes.names == ["background", "car", "road"]
    mask = source[0].mask
    assert mask[0, 0] == 0 and mask[20, 30] == 2 and (mask[8:16, 4:12] == 1).all()
    (yolo_root / "labels" / "val" / "val1.txt").unlink()  # no label file: no object
    assert (open_split(yolo_root, "val")[1].mask == 0).all()


def test_yolo_without_background_ignores_uncovered_pixels(yolo_root):
    (yolo_root / "data.yaml").write_text("names: [x, car, road]\n")
    assert open_split(yolo_root, "train")[0].mask[0, 0] == IG


@pytest.mark.parametrize(
    "line, message",
    [
        ("7 0 0 1 0 1 1", "class 7 is not one of the 3 names"),
        ("1 0.5 0.5 0.2 0.2", "a box (class cx cy w h), not a polygon"),
        ("1 0 0 1 0 1", "an even number (>= 6) of coordinates, got 5"),
        ("1 0 0 1.5 0 1 1", "point (1.5, 0) is outside the image"),
        ("car 0 0 1 0 1 1", "expected 'class x1 y1 x2 y2 ...' numbers"),
    ],
)
def test_yolo_bad_lines_name_the_file_and_line(yolo_root, line, message):
    label = yolo_root / "labels" / "val" / "val0.txt"
    label.write_text(label.read_text() + line + "\n")
    with pytest.raises(PixelsegError, match="val0.txt: line 3: ") as e:
        open_split(yolo_root, "val")[0]
    assert message in str(e.value)
    assert any(p.startswith("val0.txt: line 3: ") and message in p for p in problems(yolo_root))


def test_yolo_names_must_be_ids_without_gaps(yolo_root):
    (yolo_root / "data.yaml").write_text("names: {0: a, 2: b}\n")
    with pytest.raises(PixelsegError, match=r"data.yaml: 'names' ids must be 0..1"):
        open_split(yolo_root, "train")


def test_a_clean_labelme_and_yolo_dataset_checks_clean(labelme_root, yolo_root):
    for root in (labelme_root, yolo_root):
        report = check_dataset(root)
        assert report.ok, report.problems
    assert np.isin(open_split(yolo_root, "val")[0].mask, [0, 1, 2]).all()
