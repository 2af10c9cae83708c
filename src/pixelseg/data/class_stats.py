"""Class pixel statistics of a dataset split, and the loss weights derived from them.

    stats = class_stats(source)                  # every mask's label counts, summed
    weights = weights_for_source(source, "median")      # or "sqrt"; one weight per class

The counts are the file facts of ``file_facts.py`` (one record per mask, keyed by its path,
size and modification time, under the user cache folder, never inside the dataset): the
inspection before training has usually learnt them already, so the statistics cost a stat
per mask, and an edited mask is decoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from .parallel import map_items
from .source import SegmentationSource, label_values_message

WEIGHT_METHODS = ("median", "sqrt")


@dataclass
class ClassStats:
    """Pixel statistics of one split. Lists are indexed by class id."""

    names: list[str]
    pixels: list[int]  # pixels of each class
    image_pixels: list[int]  # labelled pixels of the images in which the class occurs
    images: list[int]  # images in which the class occurs
    ignore_pixels: int = 0
    num_images: int = 0

    @classmethod
    def empty(cls, names: Sequence[str]) -> ClassStats:
        n = len(names)
        return cls(list(names), [0] * n, [0] * n, [0] * n)

    def add_counts(self, counts: dict[int, int]) -> None:
        """Add one label map given as value -> pixel count. Values that are neither a class
        id nor IGNORE_INDEX are skipped (the dataset check reports them)."""
        n = len(self.names)
        present = {v: c for v, c in counts.items() if 0 <= v < n and c > 0}
        labelled = sum(present.values())
        for v, c in present.items():
            self.pixels[v] += c
            self.image_pixels[v] += labelled
            self.images[v] += 1
        self.ignore_pixels += counts.get(IGNORE_INDEX, 0)
        self.num_images += 1

    def shares(self) -> list[float]:
        """Each class's share of all labelled pixels."""
        total = sum(self.pixels)
        return [p / total if total else 0.0 for p in self.pixels]

    def frequencies(self) -> list[float]:
        """Median-frequency balancing's frequency (Eigen & Fergus 2015, SegNet): a class's
        pixels over the labelled pixels of the images in which it occurs; 0 when absent."""
        return [p / t if t else 0.0 for p, t in zip(self.pixels, self.image_pixels)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassStats:
        return cls(**d)


def class_weights(freqs: Sequence[float], method: str) -> list[float]:
    """Loss weights from per-class frequencies.

    ``median``: median(f) / f_c, the median taken over the classes present (Eigen & Fergus):
    the median class gets 1, rarer classes more. ``sqrt``: 1 / sqrt(f_c), scaled so that the
    present classes average 1. Classes with frequency 0 (absent from the split) get weight 0:
    they have no pixels to weight, and a huge weight would only matter if they appeared.

    >>> class_weights([0.5, 0.25, 0.0, 0.125], "median")
    [0.5, 1.0, 0.0, 2.0]
    """
    f = np.asarray(freqs, dtype=np.float64)
    present = f > 0
    if not present.any():
        raise PixelsegError("class weights: no class has any pixel in the training split")
    w = np.zeros_like(f)
    if method == "median":
        w[present] = np.median(f[present]) / f[present]
    elif method == "sqrt":
        w[present] = 1.0 / np.sqrt(f[present])
        w[present] /= w[present].mean()
    else:
        raise PixelsegError(
            f"train.class_weights: unknown method {method!r}; "
            f"choose from {', '.join(WEIGHT_METHODS)}"
        )
    return [float(v) for v in w]


def class_stats(
    source: SegmentationSource,
    cache_dir: Path | None = None,
    refresh: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> ClassStats:
    """Sum every mask's label counts, decoding only the masks the file facts do not know (all
    of them with ``refresh``). Bad label values raise, naming the file."""
    num_classes = source.classes.num_classes
    facts = source.file_facts(cache_dir)
    header = getattr(source, "mask_size", None) is None

    def count(item) -> dict[int, int] | None:
        if item.mask is None:
            return None
        known = None if refresh else facts.mask(item)
        if known is None:
            facts.masks.pop(str(item.image), None)
            known = facts.mask_facts(item, source.decode_mask, header=header)
        bad = known.bad_values(num_classes)
        if bad:
            raise PixelsegError(f"{item.mask}: {label_values_message(bad, num_classes)}")
        return known.counts

    stats = ClassStats.empty(source.classes.names)
    try:
        for counts in map_items(
            count, source.items, workers, progress, f"class stats {source.split}"
        ):
            if counts is not None:
                stats.add_counts(counts)
    finally:
        facts.save()
    return stats


def weights_for_source(
    source: SegmentationSource, method: str, cache_dir: Path | None = None, progress: bool = False
) -> list[float]:
    """Loss weights for a training split: ``median`` uses ``frequencies()`` (per image where
    present, as in SegNet), ``sqrt`` uses each class's share of all labelled pixels."""
    if method not in WEIGHT_METHODS:
        class_weights([1.0], method)  # raises the error naming the choices
    stats = class_stats(source, cache_dir, progress=progress)
    freqs = stats.frequencies() if method == "median" else stats.shares()
    return class_weights(freqs, method)
