"""File facts: what the pre-training check and the class scan learn is cached by each file's
size and mtime, so an unchanged file is not decoded twice, a changed one is, and a bad one is
reported on every start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dataset_builders import build_mask_folder, save_mask, stripes

from pixelseg.data import file_facts
from pixelseg.data.formats import open_split
from pixelseg.data.imageio import list_images
from pixelseg.data.parallel import map_items
from pixelseg.data.preflight import preflight
from pixelseg.errors import PixelsegError


@pytest.fixture
def decodes(monkeypatch) -> dict[str, int]:
    """Counts images read through and masks decoded (through the cache's entry points)."""
    counts = {"images": 0, "masks": 0}
    read_header, value_counts = file_facts.read_header, file_facts.value_counts

    def counting_read_header(path, verify=False):
        counts["images"] += verify
        return read_header(path, verify)

    def counting_value_counts(mask):
        counts["masks"] += 1
        return value_counts(mask)

    monkeypatch.setattr(file_facts, "read_header", counting_read_header)
    monkeypatch.setattr(file_facts, "value_counts", counting_value_counts)
    return counts


def fresh_process(monkeypatch) -> None:
    """Forget what this process holds in memory, as a new ``pixelseg train`` would."""
    monkeypatch.setattr(file_facts, "_LOADED", {})
    from pixelseg.data.readers import mask_folder

    monkeypatch.setattr(mask_folder, "_INFERRED", {})


def open_both(root: Path):
    return [open_split(root, "train"), open_split(root, "val")]


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_second_start_decodes_nothing_and_a_changed_mask_is_checked_again(
    tmp_path, decodes, monkeypatch
):
    root = build_mask_folder(tmp_path / "data")
    assert preflight(open_both(root), progress=False) == []
    # First start: 4 images verified; the 2 train masks decoded once (by the class scan,
    # whose facts the check reuses), the 2 val masks by the check.
    assert decodes == {"images": 4, "masks": 4}

    fresh_process(monkeypatch)
    decodes.update(images=0, masks=0)
    assert preflight(open_both(root), progress=False) == []
    assert decodes == {"images": 0, "masks": 0}

    # An edited mask (new content, new mtime) is decoded again, and its bad label is caught.
    fresh_process(monkeypatch)
    bad = root / "val" / "masks" / "val1.png"
    save_mask(bad, stripes([0, 7]))
    bump_mtime(bad)
    with pytest.raises(PixelsegError, match=r"val1.png: label values \[7\]"):
        preflight(open_both(root), progress=False)
    assert decodes["masks"] == 1


def test_a_bad_file_is_reported_on_every_start(tmp_path, monkeypatch):
    root = build_mask_folder(tmp_path / "data")
    broken = root / "train" / "images" / "train1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    for _ in range(2):
        fresh_process(monkeypatch)
        sources = open_both(root)
        skipped = preflight(sources, skip_bad=True, progress=False)
        assert [file for file, _ in skipped] == [str(broken)]
        assert "unreadable or truncated image" in skipped[0][1]
        assert [item.name for item in sources[0].items] == ["train0"]


def test_class_scan_sees_a_new_mask_with_a_new_class(tmp_path, monkeypatch):
    root = build_mask_folder(tmp_path / "data")
    assert open_split(root, "train").classes.num_classes == 3
    fresh_process(monkeypatch)
    save_mask(root / "train" / "masks" / "train2.png", stripes([0, 4]))
    (root / "train" / "images" / "train2.png").write_bytes(
        (root / "train" / "images" / "train0.png").read_bytes()
    )
    assert open_split(root, "val").classes.num_classes == 5


def test_list_images_sees_added_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "b.png").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"")
    assert list_images(folder) == [folder / "b.png"]
    (folder / "a.JPG").write_bytes(b"")
    bump_mtime(folder)  # some filesystems keep a coarse directory mtime
    assert list_images(folder) == [folder / "a.JPG", folder / "b.png"]


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_map_items_keeps_order_in_chunks(n):
    assert map_items(lambda x: x * x, list(range(n)), workers=3) == [x * x for x in range(n)]
