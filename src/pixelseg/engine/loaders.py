"""The trainer's data loaders: per-process batches, distributed shards, and where the
augmentation runs (per sample in the loader, or batched on the device)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, SequentialSampler

from ..config import RunConfig
from ..data.loader import build_loader, loader_workers
from ..data.pipeline import augment_params, eval_dataset, train_dataset
from ..data.size_batches import same_size_batches
from .batch_augment import BatchAugment
from .device import augment_on_device
from .distributed import DistInfo, ShardSampler


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    batch_augment: BatchAugment | None  # set when augmentation runs on the device
    workers: int


def collate_by_size(batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stack a batch's (image, mask) samples in groups of one size each, in first-seen order.

    Evaluation at the labels' own resolution meets images of different sizes in one batch;
    padding them to one size (``pad_collate``) would change what the model sees near the
    padded edges, so each group is predicted on its own, as ``pixelseg predict`` would.
    """
    groups = same_size_batches(batch, lambda sample: tuple(sample[1].shape), keep_order=False)
    return [
        (torch.stack([i for i, _ in group]), torch.stack([m for _, m in group])) for group in groups
    ]


def eval_loader(dataset, batch_size: int, sampler=None, num_workers: int = -1, pin: bool = False):
    """Ordered batches of a split at the labels' own resolution, grouped by size
    (``collate_by_size``): the loader ``evaluate(..., model_size=...)`` expects."""
    return build_loader(
        dataset,
        batch_size,
        sampler=sampler if sampler is not None else SequentialSampler(dataset),
        num_workers=num_workers,
        collate_fn=collate_by_size,
        pin_memory=pin,
    )


def build_loaders(
    cfg: RunConfig, train_source, val_source, batch_size: int, device: torch.device, info: DistInfo
) -> Loaders:
    """Training loader (shuffled, sharded, padded to equal shards) and validation loader
    (sharded without padding, so summed confusion matrices count every pixel once). The
    validation images keep their own size: ``evaluate(..., model_size=cfg.data.resize)``
    resizes them for the model and scores its upsampled probabilities against the labels as
    they are, as ``pixelseg eval`` and ``pixelseg predict`` do. Only the model's input is at
    the training size, so this costs little more than validating at the training size.
    """
    on_device = cfg.augment.enabled and augment_on_device(cfg.augment.on_device, device)
    # With on-device augmentation the loader only decodes, resizes and crops.
    aug_cfg = dataclasses.replace(cfg.augment, enabled=False) if on_device else cfg.augment
    batch_aug = BatchAugment(augment_params(cfg.augment), cfg.train.seed) if on_device else None
    workers = loader_workers(cfg.data.num_workers, info.local_world_size)
    pin = device.type == "cuda"
    ds = train_dataset(train_source, cfg.data, aug_cfg, cfg.train.seed)
    samples = cfg.train.images_per_epoch or len(ds)
    per_rank = -(-samples // info.world_size)
    train = build_loader(
        ds,
        batch_size,
        shuffle=True,
        seed=cfg.train.seed,
        num_workers=workers,
        drop_last=per_rank >= batch_size,
        rank=info.rank,
        world_size=info.world_size,
        pin_memory=pin,
        samples=samples,
    )
    vds = eval_dataset(val_source, None, cache=cfg.data.cache)  # at the labels' own size
    val = eval_loader(
        vds, batch_size, ShardSampler(len(vds), info.rank, info.world_size), workers, pin
    )
    return Loaders(train, val, batch_aug, workers)
