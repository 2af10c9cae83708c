"""From a data configuration to datasets: open splits, check them, attach transforms."""

from __future__ import annotations

from ..errors import PixelsegError
from .formats import open_split, resolve_format, split_names
from .loader import SegmentationDataset
from .sample import ClassTable
from .source import SegmentationSource
from .transforms import AugmentParams, EvalTransform, TrainTransform


def open_train_val(data_cfg) -> tuple[SegmentationSource, SegmentationSource, ClassTable]:
    """Open the training and validation splits; they must agree on the classes. The layout
    (``data.format``, "auto" by default) is recognised once, for both."""
    if not data_cfg.root:
        raise PixelsegError("data.root: no dataset given (use --data DIR)")
    layout = resolve_format(data_cfg.root, data_cfg.format).name
    train = open_split(data_cfg.root, data_cfg.train_split, layout)
    val = open_split(data_cfg.root, data_cfg.val_split, layout)
    if train.classes.names != val.classes.names:
        raise PixelsegError(f"{data_cfg.root}: the train and val splits disagree on the classes")
    if train.classes.num_classes >= 255:
        raise PixelsegError(
            f"{data_cfg.root}: {train.classes.num_classes} classes; at most 254 are supported"
        )
    return train, val, train.classes


def val_is_trained_on(data_cfg) -> bool:
    """True for a final pass (``data.train_split=train+val``): val scores then measure fit."""
    return data_cfg.val_split in split_names(data_cfg.train_split)


def augment_params(aug_cfg) -> AugmentParams | None:
    """The transforms' parameters of an ``augment`` section; None when it is disabled."""
    return AugmentParams.from_config(aug_cfg) if aug_cfg.enabled else None


def train_dataset(source: SegmentationSource, data_cfg, aug_cfg, seed: int) -> SegmentationDataset:
    transform = TrainTransform(
        augment_params(aug_cfg),
        crop_size=tuple(data_cfg.crop_size) if data_cfg.crop_size else None,
        resize=tuple(data_cfg.resize) if data_cfg.resize else None,
    )
    return SegmentationDataset(source, transform, seed=seed, cache=data_cfg.cache)


def eval_dataset(
    source: SegmentationSource, resize=None, cache: bool = False
) -> SegmentationDataset:
    return SegmentationDataset(
        source, EvalTransform(tuple(resize) if resize else None), cache=cache
    )
