"""Dataset checks: one broken file of every kind, each reported with its file named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import (
    REAL_CAMVID,
    bomb_png,
    exif_jpeg,
    save_mask,
    save_rgb,
    stripes,
    truncate,
)
from PIL import Image

from pixelseg.cli.main import main
from pixelseg.data.check import check_dataset
from pixelseg.data.formats import open_split
from pixelseg.data.preflight import preflight
from pixelseg.errors import PixelsegError

GOOD_MASK = stripes([0, 3, 8, 11])


def _pair(root: Path, stem: str, seed: int = 0, ext: str = ".png") -> Path:
    save_mask(root / "trainannot" / f"{stem}.png", GOOD_MASK)
    return save_rgb(root / "train" / f"{stem}{ext}", seed=seed)


@pytest.fixture
def broken_camvid(camvid_root: Path) -> Path:
    """The tiny CamVid plus one broken file of each kind in train."""
    r = camvid_root
    _pair(r, "zero").write_bytes(b"")
    truncate(_pair(r, "trunc_png", seed=3))
    truncate(_pair(r, "trunc_jpg", seed=4, ext=".jpg"), 0.6)
    _pair(r, "garbage").write_bytes(b"this is not an image at all" * 10)
    save_rgb(r / "train" / "nomask.png")
    save_mask(r / "trainannot" / "orphan.png", GOOD_MASK)
    save_mask(r / "trainannot" / "wide.png", GOOD_MASK)
    save_rgb(r / "train" / "wide.png", w=40)
    _pair(r, "badval")
    save_mask(r / "trainannot" / "badval.png", stripes([0, 40, 77]))
    _pair(r, "rgbmask")
    colours = np.array([[128, 128, 128], [128, 0, 0], [0, 128, 192]], dtype=np.uint8)
    Image.fromarray(colours[stripes([0, 1, 2])]).save(r / "trainannot" / "rgbmask.png")
    _pair(r, "gray")
    Image.fromarray(np.full((24, 32), 90, np.uint8)).save(r / "train" / "gray.png")
    _pair(r, "rgba")
    Image.fromarray(np.zeros((24, 32, 4), np.uint8)).save(r / "train" / "rgba.png")
    _pair(r, "deep")
    Image.fromarray(np.full((24, 32), 40000, np.uint16)).save(r / "train" / "deep.png")
    save_mask(r / "trainannot" / "cmyk.png", GOOD_MASK)
    Image.new("CMYK", (32, 24), (0, 128, 0, 0)).save(r / "train" / "cmyk.jpg")
    save_mask(r / "trainannot" / "upright.png", GOOD_MASK)
    exif_jpeg(r / "train" / "upright.jpg", orientation=3)  # 180 degrees: sizes still agree
    save_mask(r / "trainannot" / "sideways.png", GOOD_MASK)
    exif_jpeg(r / "train" / "sideways.jpg", orientation=6)  # 90 degrees: 32x24 once upright
    _pair(r, "dup")
    save_rgb(r / "train" / "dup.jpg")
    save_mask(r / "trainannot" / "bomb.png", GOOD_MASK)
    bomb_png(r / "train" / "bomb.png")
    return r


def _messages(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path, msg in report.problems:
        out.setdefault(Path(path).name, []).append(msg)
    return out


def _warned(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path, msg in report.warnings:
        out.setdefault(Path(path).name, []).append(msg)
    return out


def _has(found: dict[str, list[str]], name: str, text: str) -> bool:
    return any(text in m for m in found.get(name, []))


def test_full_check_names_every_broken_file(broken_camvid):
    report = check_dataset(broken_camvid, full=True, workers=2)
    assert not report.ok
    p = _messages(report)
    assert _has(p, "zero.png", "empty (0 bytes)")
    assert _has(p, "trunc_png.png", "truncated")
    assert _has(p, "trunc_jpg.jpg", "truncated")
    assert _has(p, "garbage.png", "unreadable")
    assert _has(p, "nomask.png", "image has no mask")
    assert _has(p, "orphan.png", "label map has no image")
    assert _has(p, "wide.png", "mask is 24x32 but image wide.png is 24x40")
    assert _has(p, "badval.png", "label values [40, 77] are neither a class id")
    assert _has(p, "rgbmask.png", "RGB mask with 3 distinct colours")
    assert _has(p, "sideways.png", "once turned upright by its EXIF orientation")
    assert _has(p, "dup.jpg", "duplicate name 'dup'") or _has(p, "dup.png", "duplicate name")
    assert _has(p, "bomb.png", "decompression-bomb limit")
    w = _warned(report)
    assert _has(w, "gray.png", "grayscale")
    assert _has(w, "rgba.png", "alpha channel")
    assert _has(w, "deep.png", "16-bit")
    assert _has(w, "cmyk.jpg", "CMYK")
    assert _has(w, "upright.jpg", "EXIF orientation 3")
    # the good files are clean, and every message names a file that exists in the dataset
    for good in ("f0.png", "f1.png", "gray.png", "cmyk.jpg", "upright.jpg"):
        assert good not in p, p.get(good)
    assert all(str(path).startswith(str(broken_camvid)) for path, _ in report.problems)
    text = report.text()
    assert "problem(s)" in text and "zero.png" in text and "label values [40, 77]" in text


def test_fast_check_reads_headers_only(broken_camvid, monkeypatch):
    from pixelseg.data.readers.camvid import CamVidSource

    def no_decoding(*a, **k):
        raise AssertionError("the fast check must not decode masks")

    monkeypatch.setattr(CamVidSource, "decode_mask", no_decoding)
    report = check_dataset(broken_camvid, full=False, workers=2)
    p = _messages(report)
    for name, text in [
        ("zero.png", "empty"), ("trunc_png.png", "truncated"), ("trunc_jpg.jpg", "truncated"),
        ("garbage.png", "unreadable"), ("nomask.png", "no mask"), ("wide.png", "mask is 24x32"),
        ("bomb.png", "decompression-bomb"), ("orphan.png", "no image"),
    ]:  # fmt: skip
        assert _has(p, name, text), (name, p.get(name))
    assert "badval.png" not in p  # label values need the full decode
    assert all(s.stats is None for s in report.splits.values())


def test_clean_dataset_report_and_histogram(camvid_root, tmp_path):
    report = check_dataset(camvid_root)
    assert report.ok and report.problems == [] and report.format == "camvid"
    train = report.splits["train"]
    assert train.images == 2 and train.sizes == {(24, 32): 2}
    stats = train.stats
    assert stats.images[0] == stats.images[3] == stats.images[8] == 2 and stats.images[1] == 0
    assert stats.pixels[0] == 2 * int((GOOD_MASK == 0).sum())
    assert stats.ignore_pixels == 2 * int((GOOD_MASK == 11).sum())
    d = report.to_dict()
    json.dumps(d)
    assert d["ok"] and d["splits"]["train"]["sizes"] == {"24x32": 2}
    assert "classes with no pixel in train" in " ".join(report.notes)
    assert "sky" in report.text()
    report.save_plot(tmp_path / "plot.png")
    assert Image.open(tmp_path / "plot.png").size[0] > 100


def test_mask_folder_orphans_duplicates_and_inferred_classes(mask_folder_root):
    r = mask_folder_root / "train"
    save_rgb(r / "images" / "lonely.png")  # image without mask
    save_mask(r / "masks" / "stray.png", stripes([0, 1]))  # mask without image
    save_rgb(r / "images" / "train0.jpg")  # same stem as train0.png
    Image.fromarray(stripes([0, 2]).astype(np.uint8)).save(r / "masks" / "jpegmask.jpg")
    save_rgb(r / "images" / "jpegmask.png")
    save_mask(mask_folder_root / "val" / "masks" / "val0.png", stripes([0, 7]))  # beyond train
    report = check_dataset(mask_folder_root)
    p, w = _messages(report), _warned(report)
    assert _has(p, "lonely.png", "image has no mask")
    assert _has(p, "stray.png", "mask has no image")
    assert _has(p, "train0.png", "duplicate name") or _has(p, "train0.jpg", "duplicate name")
    assert _has(p, "val0.png", "label values [7]")
    assert _has(w, "jpegmask.jpg", "JPEG")
    assert report.classes.names == ["class_0", "class_1", "class_2"]
    assert any("inferred" in n for n in report.notes)


def test_mask_folder_split_file_listing_a_missing_image(tmp_path):
    root = tmp_path / "flat"
    save_rgb(root / "images" / "a.png")
    save_mask(root / "masks" / "a.png", stripes([0, 1]))
    (root / "train.txt").write_text("a\nghost\n")
    (root / "classes.txt").write_text("bg\nthing\n")
    report = check_dataset(root)
    assert _has(_messages(report), "train.txt", "'ghost' is listed")
    assert report.classes.names == ["bg", "thing"]


def test_coco_size_mismatch_and_missing_image(coco_root):
    data_path = coco_root / "annotations" / "instances_val2017.json"
    data = json.loads(data_path.read_text())
    data["images"][0]["width"] = 99
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]
    data_path.write_text(json.dumps(data))
    (coco_root / "val2017" / "b.jpg").unlink()
    p = _messages(check_dataset(coco_root))
    assert _has(p, "a.jpg", "mask is 24x99 but image a.jpg is 24x32")
    assert _has(p, "b.jpg", "image file not found")


def test_voc_and_cityscapes_clean(voc_root, cityscapes_root):
    for root in (voc_root, cityscapes_root):
        report = check_dataset(root)
        assert report.ok, report.problems
    orphan = cityscapes_root / "gtFine/val/lindau/lindau_000001_000019_gtFine_labelIds.png"
    save_mask(orphan, stripes([7]))
    (cityscapes_root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png").unlink()
    p = _messages(check_dataset(cityscapes_root))
    assert _has(p, orphan.name, "label map has no image")
    assert _has(p, "aachen_000000_000019_leftImg8bit.png", "image has no mask")


def test_train_refuses_exactly_what_check_data_calls_a_problem(broken_camvid):
    """One inspection: the files check-data names are the files train skips, and no other."""
    report = check_dataset(broken_camvid, full=True, workers=2)
    reported = {str(path) for path, _ in report.problems}
    sources = [open_split(broken_camvid, "train"), open_split(broken_camvid, "val")]
    skipped = preflight(sources, skip_bad=True, progress=False)
    names = {item.name for item in sources[0].items}
    assert names == {"f0", "f1", "gray", "rgba", "deep", "cmyk", "upright"}
    bad_items = {"zero", "trunc_png", "trunc_jpg", "garbage", "nomask", "wide", "badval",
                 "rgbmask", "sideways", "dup", "bomb"}  # fmt: skip
    assert {Path(f).stem for f, _ in skipped} == bad_items | {"orphan"}
    # every problem check-data reports is in skipped.txt's lines, and nothing more
    lines = " ".join(m for _, m in skipped)
    assert all(path in lines for path in reported)
    assert {Path(f).stem for f, _ in skipped} == {Path(p).stem for p in reported}
    msg = dict((Path(f).stem, m) for f, m in skipped)["zero"]
    assert "zero.png" in msg and "empty" in msg
    with pytest.raises(PixelsegError, match="more problems; see pixelseg check-data"):
        preflight([open_split(broken_camvid, "train")], progress=False)


def test_truncated_jpeg_is_refused_by_train_and_cached_as_nothing(camvid_root, monkeypatch):
    """The header of a truncated JPEG reads fine; the pre-check reads the pixels (cheaply)."""
    truncate(_pair(camvid_root, "cut", ext=".jpg"), 0.9)
    with pytest.raises(PixelsegError, match=r"cut\.jpg: unreadable or truncated image"):
        preflight([open_split(camvid_root, "train")], progress=False)
    from pixelseg.data import file_facts

    monkeypatch.setattr(file_facts, "_LOADED", {})  # a new start: still refused
    with pytest.raises(PixelsegError, match=r"cut\.jpg: unreadable or truncated image"):
        preflight([open_split(camvid_root, "train")], progress=False)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_is_applied_when_comparing_sizes(camvid_root, orientation):
    """Images are read upright (read_image applies EXIF): a mask of the upright size is
    right, one of the stored size is wrong; check-data and train agree."""
    r = camvid_root
    exif_jpeg(r / "train" / "good.jpg", orientation, h=32, w=24)  # stored 24 wide: upright 24x32
    save_mask(r / "trainannot" / "good.png", GOOD_MASK)  # 24x32: the upright size
    exif_jpeg(r / "train" / "bad.jpg", orientation)  # stored 24x32: upright 32x24
    save_mask(r / "trainannot" / "bad.png", GOOD_MASK)  # 24x32: the stored size
    from pixelseg.data.imageio import read_image

    assert read_image(r / "train" / "good.jpg").shape[:2] == GOOD_MASK.shape
    p = _messages(check_dataset(r))
    assert "good.png" not in p and "good.jpg" not in p
    assert _has(p, "bad.png", "once turned upright by its EXIF orientation")
    sources = [open_split(r, "train")]
    skipped = preflight(sources, skip_bad=True, progress=False)
    assert [Path(f).name for f, _ in skipped] == ["bad.jpg"]
    assert "good" in {item.name for item in sources[0].items}


def test_cli_exit_codes_and_outputs(camvid_root, broken_camvid, tmp_path, capsys):
    # broken_camvid is camvid_root with damage added; build a clean copy for the 0 case
    from dataset_builders import build_camvid

    clean = build_camvid(tmp_path / "clean")
    out_json, out_plot = tmp_path / "r.json", tmp_path / "p.png"
    assert main(["check-data", str(clean), "--json", str(out_json), "--plot", str(out_plot)]) == 0
    assert json.loads(out_json.read_text())["ok"] is True and out_plot.stat().st_size > 0
    assert "no problems found" in capsys.readouterr().out
    assert main(["check-data", str(broken_camvid), "--fast"]) == 1
    assert "zero.png" in capsys.readouterr().out
    assert main(["check-data", str(tmp_path / "nowhere")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="shared CamVid copy not present")
def test_real_camvid_fast_check():
    report = check_dataset(REAL_CAMVID, full=False, workers=2)
    assert report.ok, report.problems[:5]
    assert report.splits["train"].images == 367 and report.splits["val"].images == 101
    assert report.splits["train"].sizes == {(360, 480): 367}


def _layout_damage(root: Path) -> None:
    """A mask without an image, two images of one stem, two masks of one stem."""
    r = root / "train"
    save_mask(r / "masks" / "stray.png", stripes([0, 1]))
    save_rgb(r / "images" / "train0.jpg")  # train0.png exists: which one is the mask's?
    save_rgb(r / "images" / "twin.png")
    save_mask(r / "masks" / "twin.png", stripes([0, 1]))
    save_mask(r / "masks" / "twin.bmp", stripes([0, 2]))


def test_orphan_masks_and_duplicate_stems_are_problems_for_train_too(mask_folder_root):
    _layout_damage(mask_folder_root)
    p = _messages(check_dataset(mask_folder_root))
    assert _has(p, "stray.png", "mask has no image")
    assert _has(p, "train0.jpg", "duplicate name 'train0'") and _has(p, "train0.png", "duplicate")
    assert _has(p, "twin.png", "masks twin.bmp, twin.png have the same stem 'twin'")
    with pytest.raises(PixelsegError) as refused:
        preflight([open_split(mask_folder_root, "train")], progress=False)
    assert "\n" not in str(refused.value) and "more problems; see pixelseg check-data" in str(
        refused.value
    )
    sources = [open_split(mask_folder_root, "train")]
    skipped = preflight(sources, skip_bad=True, progress=False)
    assert sorted(Path(f).name for f, _ in skipped) == [
        "stray.png", "train0.jpg", "train0.png", "twin.png",
    ]  # fmt: skip
    assert [item.name for item in sources[0].items] == ["train1"]


def test_cli_train_skip_bad_lists_layout_problems_in_skipped_txt(mask_folder_root, tmp_path):
    _layout_damage(mask_folder_root)
    tiny = ["model.width=4", "model.depth=2", "train.batch_size=2", "train.max_steps_per_epoch=1"]
    common = ["train", "--quiet", "--data", str(mask_folder_root), "--model", "unet"]
    common += ["--out-dir", str(tmp_path / "runs"), "--epochs", "1"]
    assert main([*common, "--name", "refused", *tiny]) == 2
    assert not (tmp_path / "runs" / "refused").exists()
    assert main([*common, "--name", "s", "--skip-bad", *tiny]) == 0
    skipped = (tmp_path / "runs" / "s" / "skipped.txt").read_text()
    for name in ("stray.png", "train0.jpg", "train0.png", "twin.png"):
        assert name in skipped


def test_fast_check_of_a_mask_folder_decodes_no_mask_for_its_classes(mask_folder_root, monkeypatch):
    """Without a classes file the reader infers the classes from the training masks, lazily:
    the fast check, which needs no class table, decodes nothing."""
    from pixelseg.data.readers import mask_folder

    def no_decoding(*a, **k):
        raise AssertionError("the fast check must not decode masks")

    monkeypatch.setattr(mask_folder, "read_mask", no_decoding)
    report = check_dataset(mask_folder_root, full=False)
    assert report.ok and report.classes is None
    assert report.splits["train"].sizes == {(24, 32): 2}
    monkeypatch.undo()
    full = check_dataset(mask_folder_root)
    assert full.classes.names == ["class_0", "class_1", "class_2"]
