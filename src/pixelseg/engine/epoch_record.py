"""What one epoch of training reports: the training pass's numbers (``TrainEpoch``) and the
epoch's row (``EpochRow``), which is one line of ``metrics.jsonl`` (``to_dict()``), one line of
the console table (``line()``, under ``HEADER``) and the metrics its checkpoints record.

>>> row = EpochRow(1, 0.9, 0.5, 0.25, 1.1, 0.4, 0.2, 1e-3, 2.0)
>>> list(row.to_dict())[:4]
['epoch', 'train_loss', 'train_pixel_accuracy', 'train_miou']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .evaluate import EvalResult


@dataclass(frozen=True)
class TrainEpoch:
    """One pass over the training batches: mean loss, the scores of the training batches'
    confusion matrix (which the overfitting diagnosis sets against val's), the last lr."""

    loss: float
    pixel_accuracy: float
    miou: float
    lr: float


@dataclass(frozen=True)
class EpochRow:
    """The metrics of one epoch; the field order is the key order of ``metrics.jsonl``."""

    epoch: int
    train_loss: float
    train_pixel_accuracy: float
    train_miou: float
    val_loss: float | None
    val_pixel_accuracy: float
    val_miou: float
    lr: float
    time_s: float

    @classmethod
    def of(cls, epoch: int, train: TrainEpoch, val: EvalResult, seconds: float) -> EpochRow:
        return cls(
            epoch=epoch,
            train_loss=train.loss,
            train_pixel_accuracy=train.pixel_accuracy,
            train_miou=train.miou,
            val_loss=val.loss,
            val_pixel_accuracy=val.scores.pixel_accuracy,
            val_miou=val.scores.mean_iou,
            lr=train.lr,
            time_s=seconds,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """The row in the console table (columns of ``HEADER``)."""
        return (
            f"{self.epoch:>5d} {self.train_loss:>10.4f} {self.train_pixel_accuracy:>9.4f} "
            f"{self.val_loss:>9.4f} {self.val_pixel_accuracy:>8.4f} {self.val_miou:>8.4f} "
            f"{self.lr:>9.2e} {self.time_s:>6.1f}s"
        )


HEADER = (
    f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {'val_loss':>9} {'val_acc':>8} "
    f"{'val_miou':>8} {'lr':>9} {'time':>7}"
)
