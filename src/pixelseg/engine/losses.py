"""Losses. All of them ignore IGNORE_INDEX pixels."""

from __future__ import annotations

import torch
from torch import nn

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError

LOSSES = ("ce",)


def build_loss(name: str, num_classes: int, class_weights: list[float] | None = None) -> nn.Module:
    """Build a loss by name. ``class_weights`` (one per class) weight the cross-entropy term."""
    weight = None
    if class_weights is not None:
        if len(class_weights) != num_classes:
            raise PixelsegError(
                f"train.class_weights: {len(class_weights)} weights for {num_classes} classes"
            )
        weight = torch.tensor(class_weights, dtype=torch.float32)
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)
    raise PixelsegError(f"train.loss: unknown loss {name!r}; choose from {', '.join(LOSSES)}")
