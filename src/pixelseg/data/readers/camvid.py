"""CamVid in the SegNet layout: one folder of RGB images per split and one of label maps::

    DATA/train/*.png  DATA/trainannot/*.png
    DATA/val/         DATA/valannot/
    DATA/test/        DATA/testannot/      (any of the three splits may be absent)

Label maps are single-channel PNGs with the 11 classes below; value 11 (void) becomes
IGNORE_INDEX. An image and its label map share a file name (the stem is enough). The
``train.txt``/``val.txt`` pair lists of the SegNet tutorial are not needed: the folders say it all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import PixelsegError
from ..formats import DatasetFormat, register_format
from ..imageio import IMAGE_EXTENSIONS, list_images, read_mask
from ..sample import ClassTable, Item
from ..source import SegmentationSource

SPLITS = ("train", "val", "test")
VOID = 11

CAMVID_CLASSES = ClassTable(
    names=[
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "sign",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ],  # fmt: skip
    # The SegNet tutorial's display colours.
    colours=[
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ],  # fmt: skip
)


def _annot_dir(root: Path, split: str) -> Path:
    return root / f"{split}annot"


def _has_split(root: Path, split: str) -> bool:
    return (root / split).is_dir() and _annot_dir(root, split).is_dir()


def detect(root: Path) -> bool:
    return any(_has_split(root, s) for s in SPLITS)


def splits(root: Path) -> list[str]:
    return [s for s in SPLITS if _has_split(root, s)]


def _value_lut() -> np.ndarray:
    """Raw value -> class id. Unknown values pass through unchanged so that the label check
    reports them as they are on disk."""
    lut = np.arange(256, dtype=np.int64)
    lut[VOID] = IGNORE_INDEX
    return lut


class CamVidSource(SegmentationSource):
    format_name = "camvid"
    _lut = _value_lut()

    def decode_mask(self, item: Item) -> np.ndarray:
        raw = read_mask(item.mask)
        if raw.min() >= 0 and raw.max() < 256:
            return self._lut[raw]
        return raw  # 16-bit values beyond 255: leave them for the label check to name

    def layout_problems(self) -> list[tuple[Path, str]]:
        """Label maps with no image (images with no label map show up as missing masks)."""
        images = {p.stem for p in list_images(self.root / self.split)}
        return [
            (p, f"label map has no image in {self.root / self.split}")
            for p in list_images(_annot_dir(self.root, self.split))
            if p.stem not in images
        ]


def _find_mask(annot: Path, image: Path) -> Path:
    """Same file name, else same stem with any image extension; the expected path otherwise."""
    same = annot / image.name
    if same.is_file():
        return same
    for ext in (".png", *IMAGE_EXTENSIONS):
        cand = annot / (image.stem + ext)
        if cand.is_file():
            return cand
    return annot / (image.stem + ".png")


def open_source(root: Path, split: str) -> CamVidSource:
    """Items whose label map is missing keep its expected path: loading them fails naming it,
    and ``check_dataset`` reports them."""
    annot = _annot_dir(root, split)
    items = [Item(p, _find_mask(annot, p), p.stem) for p in list_images(root / split)]
    if not items:
        raise PixelsegError(f"{root / split}: no images found")
    classes = ClassTable(list(CAMVID_CLASSES.names), list(CAMVID_CLASSES.colours))
    return CamVidSource(items, classes, root, split)


register_format(DatasetFormat("camvid", detect, open_source, splits, priority=20))
