"""Class pixel statistics of a dataset split, computed once and cached, and the loss weights
derived from them.

    stats = class_stats(source)                  # decodes every mask once, then reads the cache
    weights = weights_for_source(source, "median")      # or "sqrt"; one weight per class

The cache is a small JSON file per split under the user cache folder (``$PIXELSEG_CACHE_DIR``,
else ``$XDG_CACHE_HOME/pixelseg``, else ``~/.cache/pixelseg``), never inside the dataset, which
may be read-only. Its key hashes the format, the dataset root, the split, the class names and
every mask file's path, size and modification time, so editing a mask recomputes the counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from .imageio import atomic_write_bytes
from .parallel import map_items
from .source import SegmentationSource, check_labels

CACHE_VERSION = 1
WEIGHT_METHODS = ("median", "sqrt")


def value_counts(mask: np.ndarray) -> dict[int, int]:
    """Pixel count of every value in a label map."""
    flat = mask.ravel()
    if flat.size and flat.min() >= 0 and flat.max() < 65536:
        counts = np.bincount(flat)
        nz = np.flatnonzero(counts)
        return dict(zip(nz.tolist(), counts[nz].tolist()))
    values, counts = np.unique(flat, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


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


def compute_class_stats(
    source: SegmentationSource, workers: int | None = None, progress: bool = False
) -> ClassStats:
    """Decode every mask of ``source`` (no caching). Bad label values raise, naming the file."""
    num_classes = source.classes.num_classes

    def count(item) -> dict[int, int] | None:
        if item.mask is None:
            return None
        mask = source.decode_mask(item)
        check_labels(mask, num_classes, item.mask)
        return value_counts(mask)

    stats = ClassStats.empty(source.classes.names)
    for counts in map_items(count, source.items, workers, progress, f"class stats {source.split}"):
        if counts is not None:
            stats.add_counts(counts)
    return stats


def default_cache_dir() -> Path:
    if os.environ.get("PIXELSEG_CACHE_DIR"):
        return Path(os.environ["PIXELSEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pixelseg"


def cache_key(source: SegmentationSource) -> str:
    stats: dict[Path, tuple[int, int]] = {}

    def stamp(path: Path | None) -> list:
        if path is None:
            return [None]
        if path not in stats:
            try:
                st = path.stat()
                stats[path] = (st.st_size, st.st_mtime_ns)
            except OSError:
                stats[path] = (-1, -1)
        return [str(path), *stats[path]]

    payload = [
        CACHE_VERSION,
        source.format_name,
        str(Path(source.root).resolve()),
        source.split,
        list(source.classes.names),
        [[str(i.image), *stamp(i.mask)] for i in source.items],
    ]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / "class_stats" / f"{key[:40]}.json"


def load_cached(source: SegmentationSource, cache_dir: Path | None = None) -> ClassStats | None:
    key = cache_key(source)
    path = _cache_file(cache_dir or default_cache_dir(), key)
    try:
        data = json.loads(path.read_text())
        if data.get("key") == key:
            return ClassStats.from_dict(data["stats"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or a stale or damaged one: recompute
    return None


def save_cached(
    source: SegmentationSource, stats: ClassStats, cache_dir: Path | None = None
) -> None:
    """Best effort: an unwritable cache folder only costs a recomputation next time."""
    key = cache_key(source)
    record = {"key": key, "root": str(source.root), "split": source.split, "stats": stats.to_dict()}
    try:
        atomic_write_bytes(
            _cache_file(cache_dir or default_cache_dir(), key), json.dumps(record).encode()
        )
    except OSError:
        pass


def class_stats(
    source: SegmentationSource,
    cache_dir: Path | None = None,
    refresh: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> ClassStats:
    """Statistics of ``source``, from the cache when its masks have not changed."""
    if not refresh:
        cached = load_cached(source, cache_dir)
        if cached is not None:
            return cached
    stats = compute_class_stats(source, workers, progress)
    save_cached(source, stats, cache_dir)
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
