"""What a dataset and this machine look like, measured cheaply, for the training plan.

Image sizes (upright, as read) come from the split's file facts (``data/file_facts.py``:
headers, learnt once, usually already by the inspection before training), for at most
``MAX_SIZE_SAMPLES`` images spread evenly over the split. Class frequencies come from
``data/class_stats.py`` (the same facts' label counts), on at most ``MAX_STATS_SAMPLES``
masks for huge datasets.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data.class_stats import class_stats
from ..data.file_facts import read_header
from ..data.parallel import available_cores
from ..data.source import SegmentationSource
from ..errors import PixelsegError

MAX_SIZE_SAMPLES = 300
MAX_STATS_SAMPLES = 2000


@dataclass
class DatasetFingerprint:
    root: str
    format: str
    class_names: list[str]
    n_train: int
    n_val: int
    sizes: dict[str, int]  # "HxW" -> images among those sampled
    median_hw: tuple[int, int]
    min_hw: tuple[int, int]
    max_hw: tuple[int, int]
    size_samples: int
    class_shares: list[float]  # share of labelled training pixels per class
    stats_samples: int
    ignore_share: float = 0.0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sizes_vary(self) -> bool:
        """More than a 25% difference in pixel count between the smallest and largest image."""
        small, large = self.min_hw[0] * self.min_hw[1], self.max_hw[0] * self.max_hw[1]
        return large > 1.25 * small

    def imbalance(self) -> tuple[float, int, int]:
        """(largest share / smallest share among the classes present, rarest id, commonest id)."""
        present = [(s, c) for c, s in enumerate(self.class_shares) if s > 0]
        if not present:
            return 1.0, 0, 0
        (lo, rare), (hi, common) = min(present), max(present)
        return hi / lo, rare, common

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HardwareFingerprint:
    device: str  # "cpu", "cuda:0", "mps"
    cpu_cores: int
    ram_bytes: int | None
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    def text(self) -> str:
        if self.gpu_name:
            return (
                f"{self.device} ({self.gpu_name}, {self.gpu_memory_bytes / 2**30:.0f} GiB), "
                f"{self.cpu_cores} CPU cores"
            )
        return f"{self.device}, {self.cpu_cores} CPU core(s)"

    def to_dict(self) -> dict:
        return asdict(self)


def image_size(path) -> tuple[int, int]:
    """(H, W) as ``read_image`` returns it (EXIF orientation applied), from the header only."""
    return read_header(path).upright


def spread(items: list, k: int) -> list:
    """At most ``k`` items, evenly spaced (deterministic, covers the whole split)."""
    if len(items) <= k:
        return list(items)
    idx = np.linspace(0, len(items) - 1, k).round().astype(int)
    return [items[i] for i in idx]


def fingerprint_dataset(
    train: SegmentationSource, val: SegmentationSource, progress: bool = False
) -> DatasetFingerprint:
    """What the opened training split looks like (image sizes, class shares) and how large
    both splits are. The caller opens them (``data.pipeline.open_train_val``), once for the
    fingerprint and the timed data loading alike."""
    root = train.root
    if len(train) == 0:
        raise PixelsegError(f"{root}: the {train.split} split has no images")
    sampled = spread(train.items, MAX_SIZE_SAMPLES)
    facts = train.file_facts()
    try:
        sizes = Counter(facts.upright_sizes([item.image for item in sampled]))
    except PixelsegError as e:  # a damaged file: check-data names it; the plan needs a size
        raise PixelsegError(f"{e}; run pixelseg check-data {root}") from None
    facts.save()
    hs = sorted(h for (h, _), n in sizes.items() for _ in range(n))
    ws = sorted(w for (_, w), n in sizes.items() for _ in range(n))
    median = (int(np.median(hs)), int(np.median(ws)))
    by_area = sorted(sizes, key=lambda hw: hw[0] * hw[1])
    stats_source = _subset(train, MAX_STATS_SAMPLES)
    stats = class_stats(stats_source, progress=progress)
    total = sum(stats.pixels) + stats.ignore_pixels
    return DatasetFingerprint(
        root=str(root),
        format=train.format_name,
        class_names=list(train.classes.names),
        n_train=len(train),
        n_val=len(val),
        sizes={f"{h}x{w}": n for (h, w), n in sizes.most_common()},
        median_hw=median,
        min_hw=by_area[0],
        max_hw=by_area[-1],
        size_samples=len(sampled),
        class_shares=stats.shares(),
        stats_samples=len(stats_source),
        ignore_share=stats.ignore_pixels / total if total else 0.0,
    )


def _subset(source: SegmentationSource, k: int) -> SegmentationSource:
    """The same source (reader and decoding rules) over an even sample of its items."""
    if len(source) <= k:
        return source
    sub = copy.copy(source)
    sub.items = spread(source.items, k)
    return sub


def fingerprint_hardware(device: torch.device) -> HardwareFingerprint:
    """This machine as the plan sees it: the training device (resolved by the caller, which
    times the candidates on it too), CPU cores, memory, and the GPU's name and memory."""
    ram = None
    if hasattr(os, "sysconf"):
        try:
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            ram = None
    hw = HardwareFingerprint(str(device), available_cores(), ram)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device.index or 0)
        hw.gpu_name, hw.gpu_memory_bytes = props.name, int(props.total_memory)
    elif device.type == "mps":
        hw.gpu_name = "Apple MPS"
    return hw
