"""The mask-folder layout: ``images/`` and ``masks/`` with matching file stems.

Either split into subfolders::

    DATA/train/images/*.jpg  DATA/train/masks/*.png  DATA/val/...  [DATA/test/...]

or flat with split files listing stems (or file names), one a line::

    DATA/images/  DATA/masks/  DATA/train.txt  DATA/val.txt  [DATA/test.txt]

Masks are single-channel or palette PNGs of class ids, or RGB masks mapped through the
colours of an optional ``classes.txt`` / ``classes.yaml`` at DATA's top level.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import PixelsegError
from ..classes_file import find_classes_file, read_classes_file
from ..file_facts import FileFacts
from ..formats import DatasetFormat, register_format
from ..imageio import list_images, read_colour_mask, read_mask
from ..parallel import map_items
from ..sample import ClassTable, Item
from ..source import SegmentationSource

SPLITS = ("train", "val", "test")


def _pair_dir(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "masks").is_dir()


def detect(root: Path) -> bool:
    return _pair_dir(root) or any(_pair_dir(root / s) for s in SPLITS)


def splits(root: Path) -> list[str]:
    if any(_pair_dir(root / s) for s in SPLITS):
        return [s for s in SPLITS if _pair_dir(root / s)]
    return [s for s in SPLITS if (root / f"{s}.txt").is_file()]


Problem = tuple[Path, str]


def _by_stem(paths: list[Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in paths:  # os.path on the string: Path.stem costs seconds on 100k files
        out.setdefault(os.path.splitext(os.path.basename(str(p)))[0], []).append(p)
    return out


def pair_files(
    image_dir: Path, mask_dir: Path, stems: list[str] | None = None, listing: Path | None = None
) -> tuple[list[Item], list[Problem]]:
    """Match images to masks by stem: the items, and the layout problems found on the way.

    An image without a mask stays an item (its expected mask path does not exist, which the
    inspection reports); two images with one stem are two items of one name (a duplicate the
    inspection reports); two masks with one stem, a mask without an image and a ``listing``
    entry without an image are problems here. Nothing is resolved silently.
    """
    key = (str(image_dir), str(mask_dir), None if stems is None else tuple(stems), str(listing))
    folders = (os.stat(image_dir).st_mtime_ns, os.stat(mask_dir).st_mtime_ns)
    if _PAIRED.get(key, (None,))[0] == folders:
        items, problems = _PAIRED[key][1]
        return list(items), list(problems)
    images, masks = _by_stem(list_images(image_dir)), _by_stem(list_images(mask_dir))
    problems: list[Problem] = []
    items = []
    for stem in sorted(images) if stems is None else stems:
        if stem not in images:
            problems.append(
                (listing, f"{stem!r} is listed but {image_dir} has no image of that name")
            )
            continue
        found = masks.get(stem) or [mask_dir / f"{stem}.png"]  # missing: the inspection says so
        for image in images[stem]:
            items.append(Item(image, found[0], stem))
            if len(found) > 1:
                names = ", ".join(m.name for m in found)
                msg = f"masks {names} have the same stem {stem!r}, so the pairing is ambiguous"
                problems.append((image, msg))
    problems += [
        (m, f"mask has no image in {image_dir}")
        for stem, paths in masks.items()
        if stem not in images
        for m in paths
    ]
    if not items:
        raise PixelsegError(f"{image_dir}: no images found")
    _PAIRED[key] = (folders, (items, problems))
    return list(items), list(problems)


# Pairings by folders and their mtimes, as list_images keeps listings: opening the val split
# of a dataset without a classes file pairs the train split's files again for its classes.
_PAIRED: dict[tuple, tuple] = {}


class MaskFolderSource(SegmentationSource):
    """``classes`` None: inferred from the training masks on first use (``infer_classes``)."""

    format_name = "mask-folder"

    def __init__(self, items, classes, root, split, colour_masks: bool, layout=()) -> None:
        super().__init__(items, classes, root, split)
        self.colour_masks = colour_masks
        self.classes_inferred = classes is None
        self.layout = list(layout)

    @property
    def classes(self) -> ClassTable:
        if self._classes is None:
            train = self.items
            if self.split != "train":  # every split agrees on the class count of train's masks
                train = open_source_items(self.root, "train")[0]
            # A progress bar only where the scan takes seconds (and only on a terminal).
            self._classes = infer_classes(self.root, train, progress=len(train) > 5000)
        return self._classes

    @classes.setter
    def classes(self, value: ClassTable | None) -> None:
        self._classes = value

    def mask_decoding(self) -> str:
        return f"colours {self.classes.colours}" if self.colour_masks else "default"

    def decode_mask(self, item: Item) -> np.ndarray:
        if self.colour_masks:
            return read_colour_mask(item.mask, self.classes.colours)
        return read_mask(item.mask)

    def layout_problems(self) -> list[Problem]:
        return list(self.layout)


# Inferred class tables by (mask paths, their folders' mtimes): a command opens the train
# split's masks for every split it opens.
_INFERRED: dict[tuple, ClassTable] = {}


def infer_classes(root: Path, items: list[Item], progress: bool = False) -> ClassTable:
    """No classes file: the class count is the largest id in the training masks plus one.

    The scan decodes every mask on first sight (in threads: PIL decodes without the GIL) and
    keeps what it learns in the training split's file facts, which the pre-training check
    reads too: a mask is decoded once, not once per use, and not again on the next start. A
    classes file skips the scan altogether. Masks that cannot be read count for nothing here:
    the inspection reports them.
    """
    masks = tuple(str(item.mask) for item in items)
    folders = sorted({os.path.dirname(m) for m in masks})  # strings: 100k Paths cost ~1 s
    key = (masks, tuple(os.stat(f).st_mtime_ns for f in folders))
    if key in _INFERRED:
        return _INFERRED[key]
    facts = FileFacts.for_split(MaskFolderSource.format_name, root, "train", "default")

    def largest_id(item: Item) -> int:
        try:
            return facts.mask_facts(item, lambda it: read_mask(it.mask)).high
        except PixelsegError:
            return -1

    top = max(map_items(largest_id, items, progress=progress, desc="scanning masks"), default=0)
    facts.save()
    _INFERRED[key] = ClassTable([f"class_{i}" for i in range(max(top, 0) + 1)])
    return _INFERRED[key]


def open_source(root: Path, split: str) -> MaskFolderSource:
    items, layout = open_source_items(root, split)
    cfile = find_classes_file(root)
    classes, has_colours = read_classes_file(cfile) if cfile is not None else (None, False)
    return MaskFolderSource(items, classes, root, split, colour_masks=has_colours, layout=layout)


def open_source_items(root: Path, split: str) -> tuple[list[Item], list[Problem]]:
    if _pair_dir(root / split):
        return pair_files(root / split / "images", root / split / "masks")
    listing = root / f"{split}.txt"
    stems = [Path(s.split()[0]).stem for s in listing.read_text().splitlines() if s.strip()]
    return pair_files(root / "images", root / "masks", stems, listing)


register_format(DatasetFormat("mask-folder", detect, open_source, splits, priority=50))
