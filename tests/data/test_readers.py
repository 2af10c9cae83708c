"""Readers of real dataset layouts: detection, splits, class tables and label remapping."""

from __future__ import annotations

import pickle
import shutil
import sys

import numpy as np
import pytest
from dataset_builders import CAMVID_MASK, CITYSCAPES_LABELS, REAL_CAMVID, H, W

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data import formats
from pixelseg.data.formats import open_split, resolve_format
from pixelseg.data.preflight import preflight
from pixelseg.errors import PixelsegError

LAYOUTS = [
    "camvid_root",
    "voc_root",
    "cityscapes_root",
    "coco_root",
    "mask_folder_root",
    "labelme_root",
    "yolo_root",
]
EXPECTED = {
    "camvid_root": "camvid",
    "voc_root": "voc",
    "cityscapes_root": "cityscapes",
    "coco_root": "coco",
    "mask_folder_root": "mask-folder",
    "labelme_root": "labelme",
    "yolo_root": "yolo",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_detected_by_exactly_its_reader(layout, request):
    root = request.getfixturevalue(layout)
    assert resolve_format(root).name == EXPECTED[layout]
    formats.list_formats()
    detected = [f.name for f in formats._FORMATS.values() if f.detect(root)]
    assert detected == [EXPECTED[layout]]


def test_priorities_are_distinct_and_more_specific_than_mask_folder():
    formats.list_formats()
    prios = {f.name: f.priority for f in formats._FORMATS.values()}
    for name in ("camvid", "voc", "cityscapes", "coco", "labelme", "yolo"):
        assert prios[name] < prios["mask-folder"]
    assert len(set(prios.values())) == len(prios)


def test_camvid_void_becomes_ignore(camvid_root):
    src = open_split(camvid_root, "train")
    assert src.format_name == "camvid" and len(src) == 2
    assert src.classes.num_classes == 11
    assert src.classes.names[4] == "sidewalk" and src.classes.names[10] == "bicyclist"
    assert src.classes.colours[0] == (128, 128, 128)
    sample = src[0]
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    expected = np.where(CAMVID_MASK == 11, IGNORE_INDEX, CAMVID_MASK)
    np.testing.assert_array_equal(sample.mask, expected)
    assert set(np.unique(sample.mask)) == {0, 3, 8, IGNORE_INDEX}
    assert len(open_split(camvid_root, "val")) == 1
    with pytest.raises(PixelsegError, match="split 'test' not found"):
        open_split(camvid_root, "test")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_splits_joined_by_plus_read_as_one_each_item_decoded_by_its_split(layout, request):
    root = request.getfixturevalue(layout)
    if layout == "coco_root":  # a second split with its own annotation file
        shutil.copytree(root / "val2017", root / "train2017")
        ann = root / "annotations"
        shutil.copy(ann / "instances_val2017.json", ann / "instances_train2017.json")
    names = resolve_format(root).splits(root)[:2]
    assert len(names) == 2, f"{layout} is built with one split"
    parts = [open_split(root, n) for n in names]
    joined = open_split(root, "+".join(names))
    assert joined.split == "+".join(names) and joined.format_name == parts[0].format_name
    assert joined.classes.names == parts[0].classes.names
    assert len(joined) == len(parts[0]) + len(parts[1])
    assert preflight([joined], skip_bad=False, progress=False) == []  # names made unique
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(joined))[0].mask, joined[0].mask)
    expected = [(part.split, part[i]) for part in parts for i in range(len(part))]
    for i, (split, want) in enumerate(expected):
        got = joined[i]
        assert got.name == f"{split}/{want.name}"
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.mask, want.mask)


def test_joined_splits_name_a_missing_or_repeated_split(camvid_root):
    with pytest.raises(PixelsegError, match="split 'test' not found"):
        open_split(camvid_root, "train+test")
    with pytest.raises(PixelsegError, match="names the same split twice"):
        open_split(camvid_root, "train+train")


def test_camvid_unknown_value_is_reported_with_its_raw_value(camvid_root):
    from dataset_builders import save_mask, stripes

    save_mask(camvid_root / "trainannot" / "f0.png", stripes([0, 40]))
    with pytest.raises(PixelsegError, match=r"f0\.png: label values \[40\]"):
        open_split(camvid_root, "train")[0]


def test_voc_nested_palette_masks(voc_root):
    assert formats.resolve_format(voc_root).name == "voc"
    assert formats.resolve_format(voc_root).splits(voc_root) == ["train", "val"]
    src = open_split(voc_root, "train")
    assert src.classes.num_classes == 21
    assert src.classes.names[15] == "person" and src.classes.names[0] == "background"
    assert src.classes.colours[1] == (128, 0, 0)
    sample = src[0]
    assert sample.name == "2007_000001"
    assert sample.image.shape == (H, W, 3)
    assert set(np.unique(sample.mask)) == {0, 12, 15, IGNORE_INDEX}
    assert (sample.mask[0] == IGNORE_INDEX).all()


def test_voc_missing_image_is_named_when_loaded(voc_root):
    (voc_root / "VOCdevkit/VOC2012/JPEGImages/2007_000002.jpg").unlink()
    src = open_split(voc_root, "val")
    with pytest.raises(PixelsegError, match=r"2007_000002\.jpg: file not found"):
        src[0]


def test_cityscapes_label_ids_to_train_ids(cityscapes_root):
    src = open_split(cityscapes_root, "train")
    assert src.classes.num_classes == 19
    assert src.classes.names[0] == "road" and src.classes.names[18] == "bicycle"
    assert src.classes.colours[13] == (0, 0, 142)
    sample = src[0]
    assert sample.name == "aachen_000000_000019"
    lut = {7: 0, 26: 13, 0: IGNORE_INDEX, 9: IGNORE_INDEX, 33: 18}
    expected = np.vectorize(lut.get)(CITYSCAPES_LABELS)
    np.testing.assert_array_equal(sample.mask, expected)
    assert open_split(cityscapes_root, "val")[0].name == "lindau_000000_000019"


def test_coco_polygons_rle_crowd_and_overlap(coco_root):
    src = open_split(coco_root, "val")  # instances_val2017.json + val2017/
    assert src.format_name == "coco"
    assert src.classes.names == ["background", "person", "car", "dog"]
    assert [it.name for it in src.items] == ["a", "b", "c"]
    a, b, c = (src[i].mask for i in range(3))
    assert a.shape == (H, W)
    assert a[2, 2] == 3 and a[14, 14] == 3  # dog: the large polygon
    assert a[8, 8] == 1  # person: smaller, painted on top of the dog
    assert a[6, 25] == 2  # car: compressed RLE
    assert a[20, 20] == 0  # background
    assert (b[17:23, 1:7] == IGNORE_INDEX).all()  # crowd: uncompressed RLE
    assert set(np.unique(b)) == {0, IGNORE_INDEX}
    assert (c == 0).all()  # no annotation: all background
    assert src.mask_size(src.items[0]) == (H, W)


def test_coco_unknown_category_names_annotation(coco_root):
    import json

    path = coco_root / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(PixelsegError, match="annotation 1 has category_id 99"):
        open_split(coco_root, "val")[0]


def test_coco_without_pycocotools_says_what_to_install(coco_root, monkeypatch):
    from pixelseg.data.readers import coco

    coco._mask_api.cache_clear()
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    try:
        with pytest.raises(PixelsegError, match=r"pip install pixelseg\[coco\]"):
            open_split(coco_root, "val")
    finally:
        coco._mask_api.cache_clear()


def test_explicit_format_and_unknown_format(camvid_root):
    assert open_split(camvid_root, "train", format="camvid").format_name == "camvid"
    with pytest.raises(PixelsegError, match="--format nope: unknown"):
        open_split(camvid_root, "train", format="nope")


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="shared CamVid copy not present")
def test_real_camvid():
    src = open_split(REAL_CAMVID, "train")
    assert len(src) == 367 and len(open_split(REAL_CAMVID, "val")) == 101
    sample = src[0]
    assert sample.image.shape == (360, 480, 3)
    values = set(np.unique(sample.mask).tolist())
    assert values <= set(range(11)) | {IGNORE_INDEX} and IGNORE_INDEX in values
