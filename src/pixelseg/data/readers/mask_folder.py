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
from ..sample import ClassTable
from ..source import Item, SegmentationSource

SPLITS = ("train", "val", "test")


def _pair_dir(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "masks").is_dir()


def detect(root: Path) -> bool:
    return _pair_dir(root) or any(_pair_dir(root / s) for s in SPLITS)


def splits(root: Path) -> list[str]:
    if any(_pair_dir(root / s) for s in SPLITS):
        return [s for s in SPLITS if _pair_dir(root / s)]
    return [s for s in SPLITS if (root / f"{s}.txt").is_file()]


def pair_files(image_dir: Path, mask_dir: Path, stems: list[str] | None = None) -> list[Item]:
    """Match images to masks by stem; an image without a mask is an error naming it."""
    images = {p.stem: p for p in list_images(image_dir)}
    masks = {p.stem: p for p in list_images(mask_dir)}
    if stems is None:
        stems = sorted(images)
    items = []
    for stem in stems:
        if stem not in images:
            raise PixelsegError(
                f"{image_dir / stem}: listed in the split file but no image has this name"
            )
        if stem not in masks:
            raise PixelsegError(f"{images[stem]}: image has no mask in {mask_dir}")
        items.append(Item(images[stem], masks[stem], stem))
    if not items:
        raise PixelsegError(f"{image_dir}: no images found")
    return items


class MaskFolderSource(SegmentationSource):
    format_name = "mask-folder"

    def __init__(self, items, classes, root, split, colour_masks: bool) -> None:
        super().__init__(items, classes, root, split)
        self.colour_masks = colour_masks

    def mask_decoding(self) -> str:
        return f"colours {self.classes.colours}" if self.colour_masks else "default"

    def decode_mask(self, item: Item) -> np.ndarray:
        if self.colour_masks:
            return read_colour_mask(item.mask, self.classes.colours)
        return read_mask(item.mask)


# Inferred class tables by (mask paths, their folders' mtimes): a command opens the train
# split's masks for every split it opens.
_INFERRED: dict[tuple, ClassTable] = {}


def infer_classes(root: Path, items: list[Item], progress: bool = False) -> ClassTable:
    """No classes file: the class count is the largest id in the training masks plus one.

    The scan decodes every mask on first sight (in threads: PIL decodes without the GIL) and
    keeps what it learns in the training split's file facts, which the pre-training check
    reads too: a mask is decoded once, not once per use, and not again on the next start. A
    classes file skips the scan altogether.
    """
    masks = tuple(str(item.mask) for item in items)
    folders = sorted({os.path.dirname(m) for m in masks})  # strings: 100k Paths cost ~1 s
    key = (masks, tuple(os.stat(f).st_mtime_ns for f in folders))
    if key in _INFERRED:
        return _INFERRED[key]
    facts = FileFacts.for_split(MaskFolderSource.format_name, root, "train", "default")

    def largest_id(item: Item) -> int:
        known = facts.mask(item) or facts.learn_mask(item, read_mask(item.mask))
        return known.high

    top = max(map_items(largest_id, items, progress=progress, desc="scanning masks"), default=0)
    facts.save()
    _INFERRED[key] = ClassTable([f"class_{i}" for i in range(max(top, 0) + 1)])
    return _INFERRED[key]


def open_source(root: Path, split: str) -> MaskFolderSource:
    items = open_source_items(root, split)
    cfile = find_classes_file(root)
    if cfile is not None:
        classes, has_colours = read_classes_file(cfile)
    else:
        # Infer from the training split so every split agrees on the class count.
        train = open_source_items(root, "train") if split != "train" else items
        # A progress bar only where the scan takes seconds (and only on a terminal).
        classes, has_colours = infer_classes(root, train, progress=len(train) > 5000), False
    return MaskFolderSource(items, classes, root, split, colour_masks=has_colours)


def open_source_items(root: Path, split: str) -> list[Item]:
    if _pair_dir(root / split):
        return pair_files(root / split / "images", root / split / "masks")
    stems = [
        Path(s.split()[0]).stem
        for s in (root / f"{split}.txt").read_text().splitlines()
        if s.strip()
    ]
    return pair_files(root / "images", root / "masks", stems)


register_format(DatasetFormat("mask-folder", detect, open_source, splits, priority=50))
