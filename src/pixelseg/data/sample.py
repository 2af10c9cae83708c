"""The records of a dataset: the file pair a reader lists (``Item``), the decoded sample every
reader yields, and the class table that travels with a dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Item:
    """One file pair of a split, as a reader lists it (nothing decoded yet)."""

    image: Path
    mask: Path | None  # None for unlabelled images (prediction only)
    name: str


@dataclass
class Sample:
    """One image with its label map.

    image: (H, W, 3) uint8 RGB.  mask: (H, W) int64 class ids, IGNORE_INDEX for void.
    """

    image: np.ndarray
    mask: np.ndarray
    name: str = ""


@dataclass
class ClassTable:
    """Class names and RGB display colours, index = class id."""

    names: list[str]
    colours: list[tuple[int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.colours:
            self.colours = default_palette(len(self.names))
        self.colours = [tuple(int(v) for v in c) for c in self.colours]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "colours": [list(c) for c in self.colours]}

    @classmethod
    def from_dict(cls, d: dict) -> ClassTable:
        return cls(names=list(d["names"]), colours=[tuple(c) for c in d.get("colours", [])])


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """Distinct colours, Pascal-VOC style bit interleaving (class 0 is black)."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours
