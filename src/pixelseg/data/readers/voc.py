"""Pascal VOC segmentation::

    DATA/JPEGImages/<id>.jpg
    DATA/SegmentationClass/<id>.png          palette PNGs: index = class id, 255 = void
    DATA/ImageSets/Segmentation/train.txt    one <id> a line (also val, trainval, test)

DATA may also be the folder that holds ``VOCdevkit/VOC2012`` (or ``VOC2012``), as unpacked
from the official tarball. The 21 classes (background + 20) and the VOC palette are built in;
the void border (255) is IGNORE_INDEX already.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import PixelsegError
from ..formats import DatasetFormat, register_format
from ..imageio import IMAGE_EXTENSIONS, read_mask
from ..sample import ClassTable, Item, default_palette
from ..source import SegmentationSource

VOC_NAMES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
SPLITS = ("train", "val", "trainval", "test")
_NESTINGS = (".", "VOC2012", "VOCdevkit/VOC2012")


def _is_base(folder: Path) -> bool:
    return (folder / "JPEGImages").is_dir() and (folder / "SegmentationClass").is_dir()


def voc_base(root: Path) -> Path | None:
    """The folder holding JPEGImages/ and SegmentationClass/: root or a known nesting."""
    for sub in _NESTINGS:
        if _is_base(root / sub):
            return (root / sub).resolve() if sub != "." else root
    return None


def detect(root: Path) -> bool:
    return voc_base(root) is not None


def _split_file(base: Path, split: str) -> Path:
    return base / "ImageSets" / "Segmentation" / f"{split}.txt"


def splits(root: Path) -> list[str]:
    base = voc_base(root)
    if base is None:
        return []
    return [s for s in SPLITS if _split_file(base, s).is_file()]


def voc_classes() -> ClassTable:
    return ClassTable(list(VOC_NAMES), default_palette(len(VOC_NAMES)))


class VOCSource(SegmentationSource):
    format_name = "voc"

    def __init__(self, items, classes, root, split, split_file: Path) -> None:
        super().__init__(items, classes, root, split)
        self.split_file = split_file

    def decode_mask(self, item: Item) -> np.ndarray:
        # Palette indices are class ids and the border is 255 already: nothing to remap.
        return read_mask(item.mask)

    def layout_problems(self) -> list[tuple[Path, str]]:
        """Ids listed twice in the split file."""
        seen: set[str] = set()
        out = []
        for item in self.items:
            if item.name in seen:
                out.append((self.split_file, f"id {item.name!r} is listed more than once"))
            seen.add(item.name)
        return out


def _image_path(images: Path, stem: str) -> Path:
    jpg = images / f"{stem}.jpg"
    if jpg.is_file():
        return jpg
    for ext in IMAGE_EXTENSIONS:
        if (images / f"{stem}{ext}").is_file():
            return images / f"{stem}{ext}"
    return jpg  # missing: loading names it, check_dataset reports it


def open_source(root: Path, split: str) -> VOCSource:
    base = voc_base(root)
    if base is None:
        raise PixelsegError(f"{root}: no JPEGImages/ and SegmentationClass/ folders (VOC layout)")
    split_file = _split_file(base, split)
    stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
    if not stems:
        raise PixelsegError(f"{split_file}: lists no images")
    images, masks = base / "JPEGImages", base / "SegmentationClass"
    items = []
    for stem in stems:
        mask: Path | None = masks / f"{stem}.png"
        if split == "test" and not mask.is_file():
            mask = None  # the VOC test set ships without labels
        items.append(Item(_image_path(images, stem), mask, stem))
    return VOCSource(items, voc_classes(), root, split, split_file)


register_format(DatasetFormat("voc", detect, open_source, splits, priority=30))
