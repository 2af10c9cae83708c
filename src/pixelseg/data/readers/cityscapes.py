"""Cityscapes (fine annotations)::

    DATA/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    DATA/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The 34 ``labelIds`` are mapped to the 19 official training classes; every other label
(unlabeled, ego vehicle, parking, guard rail, caravan, ...) becomes IGNORE_INDEX. Values that
are not Cityscapes labelIds at all are left as they are so the label check names them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import PixelsegError
from ..formats import DatasetFormat, register_format
from ..imageio import read_mask
from ..sample import ClassTable, Item
from ..source import SegmentationSource

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelIds.png"
NUM_LABEL_IDS = 34  # labelIds 0..33

# labelId -> (train id, name, colour) for the 19 evaluated classes (cityscapesScripts labels.py).
TRAIN_CLASSES = {
    7: (0, "road", (128, 64, 128)),
    8: (1, "sidewalk", (244, 35, 232)),
    11: (2, "building", (70, 70, 70)),
    12: (3, "wall", (102, 102, 156)),
    13: (4, "fence", (190, 153, 153)),
    17: (5, "pole", (153, 153, 153)),
    19: (6, "traffic light", (250, 170, 30)),
    20: (7, "traffic sign", (220, 220, 0)),
    21: (8, "vegetation", (107, 142, 35)),
    22: (9, "terrain", (152, 251, 152)),
    23: (10, "sky", (70, 130, 180)),
    24: (11, "person", (220, 20, 60)),
    25: (12, "rider", (255, 0, 0)),
    26: (13, "car", (0, 0, 142)),
    27: (14, "truck", (0, 0, 70)),
    28: (15, "bus", (0, 60, 100)),
    31: (16, "train", (0, 80, 100)),
    32: (17, "motorcycle", (0, 0, 230)),
    33: (18, "bicycle", (119, 11, 32)),
}


def cityscapes_classes() -> ClassTable:
    ordered = sorted(TRAIN_CLASSES.values())
    return ClassTable([name for _, name, _ in ordered], [colour for _, _, colour in ordered])


def label_id_lut() -> np.ndarray:
    lut = np.arange(256, dtype=np.int64)  # non-Cityscapes values pass through to the check
    lut[:NUM_LABEL_IDS] = IGNORE_INDEX
    for label_id, (train_id, _, _) in TRAIN_CLASSES.items():
        lut[label_id] = train_id
    return lut


def _has_split(root: Path, split: str) -> bool:
    return (root / "leftImg8bit" / split).is_dir() and (root / "gtFine" / split).is_dir()


def detect(root: Path) -> bool:
    return (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()


def splits(root: Path) -> list[str]:
    return [s for s in SPLITS if _has_split(root, s)]


class CityscapesSource(SegmentationSource):
    format_name = "cityscapes"
    _lut = label_id_lut()

    def decode_mask(self, item: Item) -> np.ndarray:
        raw = read_mask(item.mask)
        if raw.min() >= 0 and raw.max() < 256:
            return self._lut[raw]
        return raw

    def layout_problems(self) -> list[tuple[Path, str]]:
        """labelIds files with no matching image."""
        images = {item.name for item in self.items}
        gt = self.root / "gtFine" / self.split
        return [
            (p, f"label map has no image in {self.root / 'leftImg8bit' / self.split}")
            for p in sorted(gt.glob(f"*/*{MASK_SUFFIX}"))
            if p.name[: -len(MASK_SUFFIX)] not in images
        ]


def open_source(root: Path, split: str) -> CityscapesSource:
    image_dir, gt_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    items = []
    for image in sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}")):
        stem = image.name[: -len(IMAGE_SUFFIX)]
        city = image.parent.name
        items.append(Item(image, gt_dir / city / f"{stem}{MASK_SUFFIX}", stem))
    if not items:
        raise PixelsegError(f"{image_dir}: no <city>/*{IMAGE_SUFFIX} images found")
    return CityscapesSource(items, cityscapes_classes(), root, split)


register_format(DatasetFormat("cityscapes", detect, open_source, splits, priority=25))
