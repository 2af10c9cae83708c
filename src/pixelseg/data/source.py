"""A dataset split as a list of file pairs plus the rule to decode them.

Readers (one per on-disk format, in ``readers/``) only find files and say how a mask's values
map to class ids; loading, validation and error messages live here, once for all formats.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from .file_facts import FileFacts
from .imageio import read_image, read_mask
from .sample import ClassTable, Item, Sample


class SegmentationSource:
    """One split of a dataset. Lazy: nothing is decoded until ``load(i)``.

    Subclasses override ``decode_mask`` when their masks need remapping (void -> ignore,
    colours -> ids, polygons -> pixels).
    """

    format_name = "generic"

    def __init__(self, items: list[Item], classes: ClassTable, root: Path, split: str) -> None:
        self.items = items
        self.classes = classes
        self.root = Path(root)
        self.split = split

    def __len__(self) -> int:
        return len(self.items)

    def mask_decoding(self) -> str:
        """What ``decode_mask``'s labels depend on besides the mask file (a colour table, a
        remapping): the key that keeps cached file facts of differently decoded masks apart."""
        return "default"

    def file_facts(self, cache_dir: Path | None = None) -> FileFacts:
        """What inspecting this split's files has taught (sizes, label counts), cached."""
        return FileFacts.for_split(
            self.format_name, self.root, self.split, self.mask_decoding(), cache_dir
        )

    def decode_image(self, item: Item) -> np.ndarray:
        return read_image(item.image)

    def decode_mask(self, item: Item) -> np.ndarray:
        return read_mask(item.mask)

    def load(self, index: int) -> Sample:
        item = self.items[index]
        image = self.decode_image(item)
        if item.mask is None:
            mask = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.int64)
        else:
            mask = self.decode_mask(item)
            if mask.shape != image.shape[:2]:
                raise PixelsegError(
                    f"{item.mask}: mask is {mask.shape[0]}x{mask.shape[1]} but image "
                    f"{item.image.name} is {image.shape[0]}x{image.shape[1]}"
                )
            check_labels(mask, self.classes.num_classes, item.mask)
        return Sample(image=image, mask=mask, name=item.name)

    def __getitem__(self, index: int) -> Sample:
        return self.load(index)


class ConcatSource(SegmentationSource):
    """Several splits of one dataset read as one (``data.train_split=train+val``).

    The standard protocol's last step: once a configuration is chosen on val, train it again
    on every labelled image. Each item is decoded by the split it came from, so per-split
    rules (COCO's annotation files) still apply, and its name is prefixed with that split
    (``val/0016E5_07959``): splits often reuse file names, and names must be unique.
    """

    def __init__(self, parts: list[SegmentationSource]) -> None:
        first = parts[0]
        for part in parts[1:]:
            if part.classes.names != first.classes.names:
                raise PixelsegError(
                    f"{first.root}: splits {first.split} and {part.split} disagree on the "
                    "classes; they cannot be trained on together"
                )
        self._part_of: dict[Item, SegmentationSource] = {}
        for part in parts:
            for item in part.items:
                named = dataclasses.replace(item, name=f"{part.split}/{item.name}")
                self._part_of[named] = part
        split = "+".join(part.split for part in parts)
        super().__init__(list(self._part_of), first.classes, first.root, split)
        self.parts = parts
        self.format_name = first.format_name
        if all(hasattr(part, "mask_size") for part in parts):  # label maps that are not images
            self.mask_size = self._mask_size  # a bound method: the source still pickles

    def _mask_size(self, item: Item) -> tuple[int, int]:
        return self._part_of[item].mask_size(item)

    def mask_decoding(self) -> str:
        return "+".join(part.mask_decoding() for part in self.parts)

    def decode_image(self, item: Item) -> np.ndarray:
        return self._part_of[item].decode_image(item)

    def decode_mask(self, item: Item) -> np.ndarray:
        return self._part_of[item].decode_mask(item)


def check_labels(mask: np.ndarray, num_classes: int, path: Path | str) -> None:
    """Every value must be a class id or IGNORE_INDEX; name the file and the bad values."""
    bad = (mask >= num_classes) & (mask != IGNORE_INDEX) | (mask < 0)
    if bad.any():
        values = np.unique(mask[bad]).tolist()
        raise PixelsegError(f"{path}: {label_values_message(values, num_classes)}")


def label_values_message(bad: list[int], num_classes: int) -> str:
    """The one wording of a label-value problem (the inspection adds the pixel count)."""
    shown = ", ".join(str(v) for v in bad[:8]) + (", ..." if len(bad) > 8 else "")
    return (
        f"label values [{shown}] are neither a class id (0..{num_classes - 1}) "
        f"nor the ignore index {IGNORE_INDEX}"
    )
