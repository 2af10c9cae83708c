"""Class pixel statistics (from the file facts, cached outside the dataset) and the loss
weights derived from them."""

from __future__ import annotations

import os

import pytest
from dataset_builders import CAMVID_MASK, save_mask, stripes

from pixelseg.data import class_stats as cs
from pixelseg.data.formats import open_split
from pixelseg.errors import PixelsegError


def test_median_frequency_and_sqrt_weights():
    assert cs.class_weights([0.5, 0.25, 0.0, 0.125], "median") == [0.5, 1.0, 0.0, 2.0]
    w = cs.class_weights([0.64, 0.16, 0.0, 0.04], "sqrt")
    assert w[2] == 0.0
    assert w[1] == pytest.approx(2 * w[0]) and w[3] == pytest.approx(4 * w[0])
    assert sum(w) / 3 == pytest.approx(1.0)  # the present classes average 1
    with pytest.raises(PixelsegError, match="unknown method 'log'"):
        cs.class_weights([0.5, 0.5], "log")
    with pytest.raises(PixelsegError, match="no class has any pixel"):
        cs.class_weights([0.0, 0.0], "median")


def test_counts_follow_the_reader_remap(camvid_root):
    stats = cs.class_stats(open_split(camvid_root, "train"), workers=1)
    per_image = {v: int((CAMVID_MASK == v).sum()) for v in (0, 3, 8, 11)}
    assert stats.num_images == 2
    assert stats.pixels[0] == 2 * per_image[0] and stats.pixels[8] == 2 * per_image[8]
    assert stats.pixels[11 - 1] == 0 and stats.ignore_pixels == 2 * per_image[11]
    labelled = per_image[0] + per_image[3] + per_image[8]
    assert stats.frequencies()[3] == pytest.approx(per_image[3] / labelled)
    assert stats.frequencies()[1] == 0.0 and stats.images == [2, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0]
    assert sum(stats.shares()) == pytest.approx(1.0)


def test_cache_is_used_invalidated_and_kept_out_of_the_dataset(camvid_root, tmp_path, monkeypatch):
    cache = tmp_path / "mycache"
    before = sorted(p for p in camvid_root.rglob("*"))
    src = open_split(camvid_root, "train")
    first = cs.class_stats(src, cache_dir=cache)
    assert list((cache / "file_facts").glob("*.json"))
    assert sorted(p for p in camvid_root.rglob("*")) == before  # nothing written in the dataset

    def boom(*a, **k):
        raise AssertionError("should come from the cache")

    from pixelseg.data import file_facts
    from pixelseg.data.readers.camvid import CamVidSource

    monkeypatch.setattr(file_facts, "_LOADED", {})  # as a new process would
    monkeypatch.setattr(CamVidSource, "decode_mask", boom)
    assert cs.class_stats(open_split(camvid_root, "train"), cache_dir=cache) == first
    monkeypatch.undo()

    mask = camvid_root / "trainannot" / "f0.png"
    save_mask(mask, stripes([5]))
    os.utime(mask, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    again = cs.class_stats(open_split(camvid_root, "train"), cache_dir=cache)
    assert again.pixels[5] > 0 and again != first


def test_weights_for_uses_the_default_cache_dir(camvid_root, _private_cache):
    w = cs.weights_for_source(open_split(camvid_root, "train"), "median")
    assert len(w) == 11 and w[1] == 0.0 and w[0] > 0
    assert list((_private_cache / "file_facts").glob("*.json"))
    with pytest.raises(PixelsegError, match="choose from median, sqrt"):
        cs.weights_for_source(open_split(camvid_root, "train"), "inverse")


def test_bad_labels_raise_naming_the_file(camvid_root):
    save_mask(camvid_root / "trainannot" / "f1.png", stripes([0, 99]))
    with pytest.raises(PixelsegError, match=r"f1\.png: label values \[99\]"):
        cs.class_stats(open_split(camvid_root, "train"))


def test_unwritable_cache_is_not_an_error(camvid_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    stats = cs.class_stats(open_split(camvid_root, "train"), cache_dir=blocker / "sub")
    assert stats.num_images == 2


def test_counts_come_from_the_inspection_before_training(camvid_root, monkeypatch):
    """One cache: the pre-training inspection learns the counts the statistics sum."""
    from pixelseg.data.preflight import preflight
    from pixelseg.data.readers.camvid import CamVidSource

    src = open_split(camvid_root, "train")
    assert preflight([src], progress=False) == []

    def boom(*a, **k):
        raise AssertionError("the inspection already counted these masks")

    expected = cs.class_stats(open_split(camvid_root, "train"), refresh=True)
    monkeypatch.setattr(CamVidSource, "decode_mask", boom)
    stats = cs.class_stats(src)
    assert stats == expected and stats.num_images == 2
