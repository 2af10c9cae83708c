"""Assemble a SegmentationSource, a transform and a sampler into a DataLoader.

Random augmentation draws from a generator seeded by (seed, epoch, index), so a run is
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
    """What ``EpochSampler`` yields: the sample, its epoch (which seeds its augmentation) and
    how far training is (0 at the first epoch, 1 at the last), which schedules augmentation."""

    epoch: int
    index: int
    progress: float = 0.0


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
        rng = np.random.default_rng([self.seed, key.epoch, key.index])
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

    Yields a ``SampleKey`` per sample; call ``set_epoch`` before each epoch. Every rank gets the
    same number of samples (the permutation is padded by wrapping), as DistributedSampler does.
    """

    def __init__(
        self, n: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.progress = 0, 0.0
        self.per_rank = -(-n // world_size)

    def set_epoch(self, epoch: int, progress: float = 0.0) -> None:
        self.epoch, self.progress = epoch, float(progress)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order += order[: self.per_rank * self.world_size - self.n]
        for i in order[self.rank :: self.world_size]:
            yield SampleKey(self.epoch, i, self.progress)


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
) -> DataLoader:
    """The one way a dataset becomes batches. ``sampler`` defaults to an ``EpochSampler``
    (``shuffle``, ``seed``, ``rank`` and ``world_size`` are its arguments); ``num_workers`` -1
    applies ``loader_workers``. Persistent workers (when there are workers) save re-forking
    them every epoch; pinned memory only helps host-to-GPU copies."""
    workers = loader_workers(num_workers)
    if sampler is None:
        sampler = EpochSampler(len(dataset), shuffle, seed, rank, world_size)
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
