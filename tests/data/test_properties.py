"""Property-based tests (hypothesis): image and mask decoding, the facts the inspection keeps
about them, and class tables. Few, small examples: these run in the ordinary suite."""

from __future__ import annotations

import io
import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from pixelseg.constants import IGNORE_INDEX  # noqa: E402
from pixelseg.data.classes_file import read_classes_file  # noqa: E402
from pixelseg.data.file_facts import (  # noqa: E402
    BadFile,
    FileFacts,
    read_header,
    value_counts,
)
from pixelseg.data.imageio import read_image, read_mask, write_png  # noqa: E402
from pixelseg.data.sample import ClassTable, Item, default_palette  # noqa: E402
from pixelseg.errors import PixelsegError  # noqa: E402

# tmp_path is shared by the examples of one test: every example writes under its own name.
# No example database: nothing is written into the working tree.
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
sizes = st.tuples(st.integers(1, 24), st.integers(1, 24))
masks = sizes.flatmap(lambda hw: hnp.arrays(np.uint8, hw, elements=st.integers(0, 255)))
images = sizes.flatmap(lambda hw: hnp.arrays(np.uint8, (*hw, 3)))
_counter = iter(range(10**9))


def _fresh(tmp_path: Path, suffix: str) -> Path:
    return tmp_path / f"x{next(_counter)}{suffix}"


@SETTINGS
@given(mask=masks, palette=st.booleans(), n=st.integers(1, 300))
def test_masks_round_trip_and_their_facts_count_every_pixel(tmp_path, mask, palette, n):
    path = _fresh(tmp_path, ".png")
    write_png(path, mask, palette=default_palette(256) if palette else None)
    if not palette:
        Image.fromarray(mask, mode="L").save(path)
    decoded = read_mask(path)
    assert decoded.dtype == np.int64 and np.array_equal(decoded, mask)
    facts = FileFacts(tmp_path / "none.json")
    known = facts.mask_facts(Item(path, path, "x"), lambda it: read_mask(it.mask))
    assert (known.height, known.width) == mask.shape
    assert known.counts == value_counts(mask) and sum(known.counts.values()) == mask.size
    values = np.unique(mask).tolist()
    assert known.bad_values(n) == [v for v in values if v >= n and v != IGNORE_INDEX]
    assert facts.mask(Item(path, path, "x")) == known  # cached by path, size and mtime


@SETTINGS
@given(image=images, orientation=st.integers(1, 8))
def test_header_size_is_the_size_read_image_returns(tmp_path, image, orientation):
    """EXIF orientation applied the same way by the header reader and by read_image."""
    path = _fresh(tmp_path, ".jpg")
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(image).save(path, "JPEG", exif=exif.tobytes())
    header = read_header(path)
    assert header.orientation == orientation
    assert header.upright == read_image(path).shape[:2]


@SETTINGS
@given(image=images)
def test_png_images_round_trip(tmp_path, image):
    path = _fresh(tmp_path, ".png")
    write_png(path, image)
    assert np.array_equal(read_image(path), image)
    assert read_header(path).upright == image.shape[:2]


@SETTINGS
@given(image=images, fmt=st.sampled_from(["PNG", "JPEG"]), cut=st.floats(0.0, 1.0))
def test_no_file_passes_the_inspection_and_then_fails_to_read(tmp_path, image, fmt, cut):
    """Truncated anywhere: what read_image cannot read, the cheap read-through refuses
    (for a JPEG exactly the same files; a PNG cut inside its last chunks is refused although
    its pixels are complete: the file is damaged)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    data = buf.getvalue()
    path = _fresh(tmp_path, ".png" if fmt == "PNG" else ".jpg")
    path.write_bytes(data[: max(1, int(len(data) * cut))] if cut < 1 else data)
    try:
        assert read_header(path, verify=True).verified
        inspected = True
    except BadFile:
        inspected = False
    try:
        read_image(path)
        readable = True
    except PixelsegError:
        readable = False
    assert inspected <= readable  # passing the inspection implies readable
    if fmt == "JPEG":
        assert inspected == readable
    if cut == 1:
        assert inspected


name_chars = string.ascii_letters + string.digits + "_-"
names = st.lists(
    st.text(name_chars, min_size=1, max_size=12).filter(lambda s: not s.startswith("#")),
    min_size=1,
    max_size=12,
)
colour = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))


@SETTINGS
@given(names=names, data=st.data(), yaml_file=st.booleans())
def test_classes_files_round_trip(tmp_path, names, data, yaml_file):
    colours = data.draw(
        st.one_of(st.just([]), st.lists(colour, min_size=len(names), max_size=len(names)))
    )
    folder = _fresh(tmp_path, "")
    folder.mkdir()
    if yaml_file:
        import yaml

        path = folder / "classes.yaml"
        doc = {"names": names, **({"colours": [list(c) for c in colours]} if colours else {})}
        path.write_text(yaml.safe_dump(doc))
    else:
        path = folder / "classes.txt"
        rows = (
            [f"{n} {' '.join(map(str, c))}" for n, c in zip(names, colours)] if colours else names
        )
        path.write_text("\n".join(["# a comment", *rows, ""]))
    table, has_colours = read_classes_file(path)
    if yaml_file:  # YAML reads some names (1, true, 1e3, null) as other types: str() them
        names = [str(n) for n in yaml.safe_load(path.read_text())["names"]]
    assert table.names == names and has_colours == bool(colours)
    assert table.colours == (list(colours) if colours else default_palette(len(names)))
    assert ClassTable.from_dict(table.to_dict()) == table


@settings(max_examples=20, deadline=None, database=None)
@given(st.integers(1, 256))
def test_default_palette_colours_are_distinct(n):
    palette = default_palette(n)
    assert len(set(palette)) == n and palette[0] == (0, 0, 0)
    assert all(0 <= v <= 255 for c in palette for v in c)


@settings(SETTINGS, max_examples=10)
@given(labels=st.lists(st.sets(st.integers(0, 20), min_size=1, max_size=4), min_size=1, max_size=3))
def test_inferred_class_count_is_the_largest_training_label_plus_one(tmp_path, labels):
    from dataset_builders import save_mask, save_rgb, stripes

    from pixelseg.data.formats import open_split

    root = _fresh(tmp_path, "")
    for i, values in enumerate(labels):
        save_rgb(root / "train" / "images" / f"{i}.png")
        save_mask(root / "train" / "masks" / f"{i}.png", stripes(sorted(values)))
    save_rgb(root / "val" / "images" / "v.png")
    save_mask(root / "val" / "masks" / "v.png", stripes([0]))
    top = max(max(v) for v in labels)
    for split in ("train", "val"):
        assert open_split(root, split).classes.num_classes == top + 1
