"""Assemble a SegmentationSource, a transform and a sampler into a DataLoader.

Random augmentation draws from a generator seeded by (seed, epoch, index[, draw]), so a run is
reproducible whatever the number of workers. The training sampler yields a ``SampleKey`` per
sample, which carries the epoch and the training progress to the dataset: keys are the one
thing the main process sends to (persistent) loader workers every epoch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..constants import IGNORE_INDEX
from .parallel import available_cores
from .source import SegmentationSource


class SampleKey(NamedTuple):
    """What ``EpochSampler`` yields: the sample, its epoch (which seeds its augmentation), how
    far training is (0 at the first epoch, 1 at the last), which schedules augmentation, and
    which pass over the split within the epoch drew it (an epoch longer than the split draws
    a sample more than once, each time augmented differently)."""

    epoch: int
    index: int
    progress: float = 0.0
    draw: int = 0


class SegmentationDataset(Dataset):
    def __init__(
        self, source: SegmentationSource, transform, seed: int = 0, cache: bool = False
    ) -> None:
        self.source = source
        self.transform = transform
        self.seed = seed
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.source)

    def _decoded(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        s = self.source.load(index)
        if self._cache is not None:
            self._cache[index] = (s.image, s.mask)
        return s.image, s.mask

    def __getitem__(self, key: SampleKey | int) -> tuple[torch.Tensor, torch.Tensor]:
        # A plain index is epoch 0 at the start of training.
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key))
        image, mask = self._decoded(key.index)
        seed = [self.seed, key.epoch, key.index] + ([key.draw] if key.draw else [])
        rng = np.random.default_rng(seed)
        image, mask = self.transform(image, mask, rng, key.progress)
        return _tensor(image).permute(2, 0, 1), _tensor(mask)


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor over a contiguous, writable copy only where needed: decoded images can be
    read-only (``np.asarray`` of a PIL image), which torch warns about."""
    if not array.flags.writeable:
        return torch.from_numpy(np.array(array, order="C"))
    return torch.from_numpy(np.ascontiguousarray(array))


class EpochSampler(Sampler[int]):
    """Shuffled (or ordered) indices, sharded across ``world_size`` ranks.

    Yields a ``SampleKey`` per sample; call ``set_epoch`` before each epoch. An epoch is
    ``samples`` draws (all ranks together; default one pass over the ``n`` samples): passes
    over the split follow each other, each in its own order, and the last is cut short. Every
    rank gets the same number of samples (the order is padded by wrapping), as
    DistributedSampler does.
    """

    def __init__(
        self,
        n: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        samples: int | None = None,
    ) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.progress = 0, 0.0
        self.samples = n if samples is None else samples
        self.per_rank = -(-self.samples // world_size)

    def set_epoch(self, epoch: int, progress: float = 0.0) -> None:
        self.epoch, self.progress = epoch, float(progress)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        keys: list[tuple[int, int]] = []  # (index, draw)
        while self.n and len(keys) < self.samples:
            order = torch.randperm(self.n, generator=g).tolist() if self.shuffle else range(self.n)
            keys += [(i, len(keys) // self.n) for i in order]
        keys = keys[: self.samples]
        keys += keys[: self.per_rank * self.world_size - self.samples]
        for i, draw in keys[self.rank :: self.world_size]:
            yield SampleKey(self.epoch, i, self.progress, draw)


def pad_collate(batch):
    """Stack images of different sizes by padding (image 0, mask ignore) to the largest."""
    images, masks = zip(*batch)
    h = max(m.shape[0] for m in masks)
    w = max(m.shape[1] for m in masks)
    if all(m.shape == (h, w) for m in masks):
        return torch.stack(images), torch.stack(masks)
    out_i = torch.zeros(len(images), 3, h, w, dtype=images[0].dtype)
    out_m = torch.full((len(masks), h, w), IGNORE_INDEX, dtype=masks[0].dtype)
    for k, (im, m) in enumerate(zip(images, masks)):
        out_i[k, :, : m.shape[0], : m.shape[1]] = im
        out_m[k, : m.shape[0], : m.shape[1]] = m
    return out_i, out_m


def loader_workers(configured: int, local_processes: int = 1) -> int:
    """``data.num_workers`` or, for -1, workers that decode while the model computes, from this
    process's share of the cores (8 GPUs on 16 cores must not start 8 workers each). On 2
    cores, decoding in the main process is faster than competing with the model's threads."""
    if configured >= 0:
        return configured
    cores = available_cores() // max(1, local_processes)
    return 0 if cores <= 2 else min(8, cores // 2)


def build_loader(
    dataset: SegmentationDataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = -1,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
    collate_fn=pad_collate,
    samples: int | None = None,
) -> DataLoader:
    """The one way a dataset becomes batches. ``sampler`` defaults to an ``EpochSampler``
    (``shuffle``, ``seed``, ``rank``, ``world_size`` and ``samples`` are its arguments);
    ``num_workers`` -1 applies ``loader_workers``. Persistent workers (when there are workers)
    save re-forking them every epoch; pinned memory only helps host-to-GPU copies."""
    workers = loader_workers(num_workers)
    if sampler is None:
        sampler = EpochSampler(len(dataset), shuffle, seed, rank, world_size, samples)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )
