"""pixelseg rank: uncertainty that a large easy region cannot drown, a diverse top K, the
files an annotator opens (ranking.csv, index.html, pre-labels), and label checking."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pixelseg.analysis.acquisition import (
    class_balanced_mean,
    diverse_order,
    label_disagreement,
    score_image,
)
from pixelseg.data.formats import open_split
from pixelseg.data.polygons import polygon_pixels
from pixelseg.data.sample import ClassTable
from pixelseg.data.scenes import write_scenes
from pixelseg.errors import PixelsegError
from pixelseg.workflows.rank import rank_images, rank_labels

H, W = 32, 40


class ColourModel:
    """A stand-in model: class 1 where the red channel is high, else 0, as sure as the red
    value is far from the threshold (so dull images are uncertain)."""

    classes = ClassTable(["background", "thing"])
    num_classes = 2

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        p1 = np.clip(image[..., 0].astype(np.float32) / 255.0, 0.001, 0.999)
        return np.stack([1 - p1, p1])


def save(path: Path, image: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return str(path)


def picture(red_inside: int, red_outside: int = 10, seed: int = 0) -> np.ndarray:
    """A red square (how sure the model is of it: ``red_inside``) on a dark background."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = red_outside
    y, x = 4 + seed % 8, 4 + seed % 12
    img[y : y + 12, x : x + 16, 0] = red_inside
    return img


def rows(out: Path) -> list[dict]:
    with open(out / "ranking.csv") as f:
        return list(csv.DictReader(f))


def test_a_large_easy_region_does_not_drown_a_small_hard_one():
    values = np.zeros((10, 10))
    classes = np.zeros((10, 10), int)
    classes[0, :2] = 1
    values[0, :2] = 1.0  # two pixels of a rare class, fully uncertain
    assert values.mean() == pytest.approx(0.02)
    assert class_balanced_mean(values, classes) == pytest.approx(0.5)


def test_the_top_k_skips_near_duplicates():
    uncertainty = np.array([0.9, 0.89, 0.88, 0.5])
    descriptors = np.array([[0.0, 0.0], [0.0, 0.01], [0.01, 0.0], [1.0, 1.0]])
    assert diverse_order(uncertainty, descriptors, 2) == [0, 3]  # not the two copies of 0


def test_mirror_disagreement_counts():
    probs = ColourModel().predict_proba(picture(200))
    assert score_image(probs, probs).flip == 0.0
    assert score_image(probs, probs[:, :, ::-1]).flip > 0.0


def test_label_disagreement_grows_with_what_the_model_is_sure_of():
    probs = ColourModel().predict_proba(picture(250))
    right = (probs.argmax(0)).astype(np.int64)
    erased = np.zeros_like(right)  # the object erased from the label
    assert label_disagreement(probs, right).disagreement == 0.0
    bad = label_disagreement(probs, erased)
    assert bad.class_disagreement > 0.4 and bad.worst_class == 1
    assert 0 < bad.pixel_disagreement < bad.class_disagreement  # a small object: class view


def test_a_large_region_with_the_wrong_class_is_seen_per_pixel():
    """Half the image relabelled, in an image of many classes: the class average dilutes it,
    the share of confidently disagreeing pixels does not."""
    pred = np.repeat(np.arange(8), 25)[None, :].repeat(200, 0)  # 8 vertical bands
    pred[:, :100] = 0  # the left half is class 0 ...
    label = pred.copy()
    label[:, 25:100] = 5  # ... labelled as class 5
    probs = np.stack([pred == c for c in range(8)]).astype(np.float32) * 0.8 + 0.2 / 8
    s = label_disagreement(probs, label)
    conf = 0.8 + 0.2 / 8
    assert s.pixel_disagreement == pytest.approx(0.375 * conf, rel=1e-5)
    assert s.disagreement == pytest.approx((s.class_disagreement + s.pixel_disagreement) / 2)
    assert s.score >= s.disagreement


def test_a_label_drawn_a_few_pixels_off_is_found_with_its_shift():
    """A misregistered mask disagrees only along edges; sliding it back over the prediction
    shows the shift, and the disagreement it removes is added to the score."""
    pred = np.zeros((200, 200), np.int64)
    pred[60:140, 50:150] = 1
    pred[90:100, 20:180] = 2  # a thin bar across: the class a shift hurts most
    probs = np.stack([pred == c for c in range(3)]).astype(np.float32) * 0.9 + 0.05
    right = label_disagreement(probs, pred)
    assert right.misalignment == 0.0 and right.shift == (0, 0)
    moved = label_disagreement(probs, np.roll(pred, (3, -2), axis=(0, 1)))
    assert moved.shift == (-3, 2)  # moved back up 3 and right 2, it fits
    assert moved.misalignment > 0.1 and moved.score > moved.disagreement > right.score
    erased = label_disagreement(probs, np.zeros_like(pred))  # wrong, but no shift mends it
    assert erased.misalignment == 0.0


@pytest.fixture
def unlabelled(tmp_path) -> Path:
    folder = tmp_path / "new"
    for i, red in enumerate([250, 140, 135, 240, 130]):  # 130-140: near the threshold, unsure
        save(folder / f"img{i}.png", picture(red, seed=i))
    save(folder / "img5.png", picture(140, seed=1))  # a near-copy of img1
    return folder


def test_rank_writes_the_ranking_gallery_and_labelme_prelabels(unlabelled, tmp_path):
    out = tmp_path / "to-label"
    result = rank_images(ColourModel(), [str(unlabelled)], out, top=3, min_area=1, progress=False)
    ranked = rows(out)
    assert [r["rank"] for r in ranked] == ["1", "2", "3", "4", "5", "6"]
    top = [Path(r["image"]).name for r in ranked[:3]]
    assert "img0.png" not in top and "img3.png" not in top  # the sure ones come last
    assert not {"img1.png", "img5.png"} <= set(top)  # near-copies are not both in the top 3
    assert result.top == [r["image"] for r in ranked[:3]]
    page = (out / "index.html").read_text()
    for name in top:
        assert name in page
    for src in [s.split("'")[0] for s in page.split("src='")[1:]]:
        assert (out / src).is_file(), src
    jsons = sorted((out / "prelabels").glob("*.json"))
    assert [p.stem for p in jsons] == sorted(Path(t).stem for t in top)
    doc = json.loads(jsons[0].read_text())
    image = (jsons[0].parent / doc["imagePath"]).resolve()
    assert image == (unlabelled / f"{jsons[0].stem}.png").resolve()
    assert (doc["imageHeight"], doc["imageWidth"]) == (H, W)
    painted = np.zeros((H, W), bool)
    for shape in doc["shapes"]:
        assert shape["label"] == "thing" and shape["shape_type"] == "polygon"
        painted |= polygon_pixels(shape["points"], H, W)
    want = ColourModel().predict_proba(np.asarray(Image.open(image))).argmax(0) == 1
    np.testing.assert_array_equal(painted, want)  # background is left out, as labelme2voc reads
    assert not (tmp_path / "to-label.partial").exists()


@pytest.mark.parametrize("fmt", ["yolo", "coco", "mask"])
def test_other_prelabel_formats(unlabelled, tmp_path, fmt):
    out = tmp_path / fmt
    rank_images(ColourModel(), [str(unlabelled)], out, top=2, prelabel_format=fmt, progress=False)
    pre = out / "prelabels"
    if fmt == "yolo":
        # Ultralytics' layout with one split, which CVAT and Datumaro import
        assert len(list((pre / "labels" / "train").glob("*.txt"))) == 2
        meta = yaml.safe_load((pre / "data.yaml").read_text())
        assert meta["train"] == "train.txt" and meta["names"][1] == "thing"
        listed = (pre / "train.txt").read_text().split()
        assert len(listed) == 2 and all(line.startswith("images/train/img") for line in listed)
    elif fmt == "coco":
        doc = json.loads((pre / "instances.json").read_text())
        assert len(doc["images"]) == 2 and doc["categories"][1]["name"] == "thing"
        # matched by file name to the images uploaded to the annotation tool
        names = {p.name for p in Path(unlabelled).iterdir()}
        assert {im["file_name"] for im in doc["images"]} <= names
    else:
        assert len(list(pre.glob("*.png"))) == 2


def test_a_list_file_with_an_unreadable_entry(unlabelled, tmp_path):
    (unlabelled / "broken.png").write_bytes(b"not an image")
    listing = unlabelled / "list.txt"
    listing.write_text("img0.png\nbroken.png\nimg1.png\n")
    out = tmp_path / "listed"
    result = rank_images(ColourModel(), out_dir=out, files=listing, top=1, progress=False)
    assert result.ranked == 2 and len(result.failed) == 1
    errors = [r for r in rows(out) if r["classes"].startswith("error")]
    assert len(errors) == 1 and "broken.png" in errors[0]["classes"]


def test_an_existing_output_is_never_replaced(unlabelled, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(PixelsegError, match="taken: already exists"):
        rank_images(ColourModel(), [str(unlabelled)], tmp_path / "taken", progress=False)


def test_rank_labels_puts_the_wrong_labels_first(tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        img = picture(250, seed=i)
        save(root / "train" / "images" / f"s{i}.png", img)
        mask = ColourModel().predict_proba(img).argmax(0).astype(np.uint8)
        if i in (2, 4):
            mask[:] = 0  # the object erased
        save(root / "train" / "masks" / f"s{i}.png", mask)
    (root / "classes.txt").write_text("background\nthing\n")
    out = tmp_path / "check"
    rank_labels(ColourModel(), root, "train", out, top=2, progress=False)
    ranked = rows(out)
    assert {Path(r["image"]).stem for r in ranked[:2]} == {"s2", "s4"}
    assert float(ranked[2]["score"]) == 0.0 and ranked[0]["worst_class"] == "thing"
    assert "disagreement" in (out / "index.html").read_text()
    assert len(open_split(root, "train")) == 6


def test_the_cli_with_a_trained_run(tmp_path):
    """A real (tiny) model end to end: train it, rank new scenes, check the labels."""
    data = tmp_path / "scenes"
    write_scenes(data, {"train": 8, "val": 4}, size=(32, 32), progress=False)
    run = [sys.executable, "-m", "pixelseg"]
    train = subprocess.run(
        [
            *run,
            "train",
            "--quiet",
            "--data",
            str(data),
            "--model",
            "unet",
            "--out-dir",
            str(tmp_path / "runs"),
            "--name",
            "tiny",
            "--epochs",
            "1",
            "model.width=4",
            "model.depth=2",
            "train.threads=1",
        ],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    model = tmp_path / "runs" / "tiny"
    new = tmp_path / "new"
    shutil.copytree(data / "val" / "images", new)
    done = subprocess.run(
        [*run, "rank", str(model), str(new), "--out", str(tmp_path / "r"), "--top", "2", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ranked 4 images" in done.stdout and len(rows(tmp_path / "r")) == 4
    assert len(list((tmp_path / "r" / "prelabels").glob("*.json"))) == 2
    check = subprocess.run(
        [
            *run,
            "rank",
            str(model),
            "--data",
            str(data),
            "--split",
            "val",
            "--out",
            str(tmp_path / "c"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert len(rows(tmp_path / "c")) == 4
    both = subprocess.run(
        [*run, "rank", str(model), str(new), "--data", str(data), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert both.returncode == 2 and "not both" in both.stderr
