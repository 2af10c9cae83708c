"""The encoder contract: an image in, features at declared strides and channels out.

Every decoder that takes ``model.encoder=NAME`` reads features through this one contract
(segmentation_models.pytorch's seam): ``strides[i]`` and ``channels[i]`` describe
``forward(x)[i]``, shallowest first, and a feature at stride ``s`` of an H x W input is
``ceil(H / s) x ceil(W / s)``. ``normalization`` is the input scaling the weights were trained
with (``Normalizer`` units: mean and std of 0-1 pixel values); the trainer records it in the
checkpoint, so predict, export and serve feed the model what it learned on.
"""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Base class: set ``strides``, ``channels`` and ``normalization`` and implement
    ``forward(x) -> list of features``."""

    strides: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    normalization: dict | None = None  # None: pixelseg's default (ImageNet mean/std)
    unused_prefixes: tuple[str, ...] = ()  # weight-file keys it does not build (a classifier)

    def feature(self, stride: int) -> int:
        """Index of the deepest feature at ``stride`` (several can share one when dilated); a
        ValueError naming the strides there are when none has it."""
        for i in reversed(range(len(self.strides))):
            if self.strides[i] == stride:
                return i
        raise ValueError(
            f"{type(self).__name__} has features at strides {list(self.strides)}, not {stride}"
        )

    def layers_through(self, stride: int) -> list[nn.Module]:
        """The layers that compute the features up to ``stride`` (the stem first), for
        fine-tuning that keeps them as pretrained (``train.encoder_frozen_stride``)."""
        raise ValueError(f"{type(self).__name__} cannot freeze its first layers")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
