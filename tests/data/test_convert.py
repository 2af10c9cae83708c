"""pixelseg convert: masks traced into polygons paint back the same pixels, in every format,
and the output folder appears whole or not at all."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from dataset_builders import save_mask, save_rgb

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.convert import convert_dataset
from pixelseg.data.formats import open_split, resolve_format
from pixelseg.data.polygons import mask_to_polygons, polygon_pixels, signed_area
from pixelseg.errors import PixelsegError

H, W = 40, 48


def scene(seed: int) -> np.ndarray:
    """Label maps with what polygons find hard: a ring (a hole), a one-pixel line, a single
    pixel, two squares touching only at a corner, a region inside another's hole, and ignore."""
    m = np.zeros((H, W), dtype=np.int64)
    m[2:20, 2:20] = 1
    m[6:14, 6:14] = 0  # the hole
    m[8:12, 8:12] = 2  # an island in the hole
    m[25, 3:40] = 3  # a one-pixel line
    m[30, 30] = 2  # one pixel
    m[32:35, 10:13] = 1
    m[35:38, 13:16] = 1  # touches the square above at a corner only
    m[:, 44:] = IGNORE_INDEX
    return np.roll(m, seed, axis=1)


@pytest.fixture
def mask_dataset(tmp_path):
    root = tmp_path / "src"
    for split in ("train", "val"):
        for i in range(2):
            save_rgb(root / split / "images" / f"img{i}.png", seed=i, h=H, w=W)
            save_mask(root / split / "masks" / f"img{i}.png", scene(i))
    (root / "classes.txt").write_text("sky\nroad\ncar\npole\n")
    return root


def test_traced_polygons_paint_back_exactly_their_pixels():
    rng = np.random.default_rng(0)
    for _ in range(300):
        mask = rng.random((rng.integers(1, 25), rng.integers(1, 25))) < rng.random()
        painted = np.zeros_like(mask)
        for poly in mask_to_polygons(mask):
            painted ^= polygon_pixels(poly, *mask.shape)
            assert signed_area(poly) == polygon_pixels(poly, *mask.shape).sum()
        np.testing.assert_array_equal(painted, mask)


def test_specks_below_min_area_are_dropped():
    mask = scene(0) == 2  # the 16-pixel island and the single pixel
    assert len(mask_to_polygons(mask)) == 2 and len(mask_to_polygons(mask, min_area=2)) == 1


@pytest.mark.parametrize("to", ["labelme", "yolo", "mask-folder", "coco"])
def test_round_trip_keeps_every_labelled_pixel(mask_dataset, tmp_path, to):
    if to == "coco":
        pytest.importorskip("pycocotools")
    out = tmp_path / to
    result = convert_dataset(mask_dataset, out, to, progress=False)
    assert result.images == {"train": 2, "val": 2}
    assert resolve_format(out).name == to and not (tmp_path / f"{to}.partial").exists()
    for split in ("train", "val"):
        before, after = open_split(mask_dataset, split), open_split(out, split)
        shift = 1 if to == "coco" else 0  # COCO adds its background as class 0
        assert after.classes.names[shift:] == before.classes.names
        for i in range(len(before)):
            want, got = before[i].mask, after[i].mask
            labelled = want != IGNORE_INDEX
            np.testing.assert_array_equal(got[labelled], want[labelled] + shift)
            np.testing.assert_array_equal(got[~labelled], IGNORE_INDEX)
            np.testing.assert_array_equal(after[i].image, before[i].image)


def test_labelme_output_is_what_labelme_writes(mask_dataset, tmp_path):
    convert_dataset(mask_dataset, tmp_path / "lm", "labelme", splits=["val"], progress=False)
    doc = json.loads((tmp_path / "lm" / "val" / "img0.json").read_text())
    assert doc["imagePath"] == "img0.png" and doc["imageData"] is None
    assert (doc["imageHeight"], doc["imageWidth"]) == (H, W)
    assert {s["shape_type"] for s in doc["shapes"]} == {"polygon"}
    assert {s["label"] for s in doc["shapes"]} == {"sky", "road", "car", "pole"}


def test_an_existing_output_is_never_replaced(mask_dataset, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PixelsegError, match="taken: already exists"):
        convert_dataset(mask_dataset, out, "yolo", progress=False)
    assert (out / "keep.txt").read_text() == "mine"


def test_a_bad_label_stops_the_conversion_and_leaves_nothing(mask_dataset, tmp_path):
    save_mask(mask_dataset / "val" / "masks" / "img1.png", np.full((H, W), 9))
    with pytest.raises(PixelsegError, match=r"img1.png: label values \[9\]"):
        convert_dataset(mask_dataset, tmp_path / "out", "labelme", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_cli(mask_dataset, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "pixelseg", "convert", str(mask_dataset), "--to", "yolo", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (yolo: train 2, val 2)" in done.stdout
    again = subprocess.run(
        [sys.executable, "-m", "pixelseg", "convert", str(mask_dataset), "--to", "yolo", str(out)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
