"""The data of a training run, opened and checked first, before the model is built or a file
written: both splits, their class table, whether val is trained on, the files left out, and the
loss's class weights (which count the training masks' pixels)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import RunConfig
from ..data import class_stats
from ..data.pipeline import open_train_val, val_is_trained_on
from ..data.preflight import preflight
from ..data.sample import ClassTable
from ..data.source import SegmentationSource
from ..errors import PixelsegError


@dataclass(frozen=True)
class TrainData:
    train: SegmentationSource
    val: SegmentationSource
    classes: ClassTable
    # A final pass (data.train_split=train+val) trains on val: its scores then measure fit,
    # not generalisation, so the last epoch is kept as best instead.
    val_in_train: bool
    skipped: list[tuple[str, str]]  # (file, problem) left out with data.skip_bad
    class_weights: list[float] | None  # train.class_weights resolved; None: unweighted


def open_train_data(cfg: RunConfig, progress: bool = True) -> TrainData:
    """Open both splits and inspect every item (``preflight``: a bad file is an error naming
    it, or is left out with ``data.skip_bad``), then resolve the class weights."""
    train, val, classes = open_train_val(cfg.data)
    skipped = preflight([train, val], skip_bad=cfg.data.skip_bad, progress=progress)
    return TrainData(
        train, val, classes, val_is_trained_on(cfg.data), skipped, class_weights(cfg, train)
    )


def class_weights(cfg: RunConfig, train_source: SegmentationSource) -> list[float] | None:
    """``train.class_weights``: none, a list as given, or computed by a method (median, sqrt)
    from the training split's class statistics."""
    cw = cfg.train.class_weights
    if cw is None or isinstance(cw, list):
        return cw
    if isinstance(cw, str):
        return class_stats.weights_for_source(train_source, cw)
    raise PixelsegError(f"train.class_weights: expected none, median, sqrt or a list, got {cw!r}")
