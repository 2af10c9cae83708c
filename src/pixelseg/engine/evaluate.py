"""Evaluation loop: loss and a confusion matrix over a whole split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..constants import IGNORE_INDEX
from ..data.transforms import Normalizer
from ..metrics import ConfusionMatrix, Scores
from .device import autocast, memory_format
from .inference import class_map, is_augmented, predict_probs

# on_batch(probs (B, C, H, W) float, predictions (B, H, W) int64, masks (B, H, W) int64)
BatchCallback = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` measured: the confusion-matrix scores and the loss (``None`` where it
    was not computed: with test-time augmentation, or no labelled pixel).

    ``to_dict()`` is the one JSON form: the scores' keys plus ``loss``.

    >>> from pixelseg.metrics import ConfusionMatrix
    >>> r = EvalResult(ConfusionMatrix(2).compute(), loss=None)
    >>> EvalResult.from_dict(r.to_dict()) == r
    True
    """

    scores: Scores
    loss: float | None

    def to_dict(self) -> dict:
        return {**self.scores.to_dict(), "loss": self.loss}

    @classmethod
    def from_dict(cls, d: dict) -> EvalResult:
        loss = d.get("loss")
        return cls(Scores.from_dict(d), None if loss is None else float(loss))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    normalizer: Normalizer,
    num_classes: int,
    device: torch.device,
    loss_fn: nn.Module | None = None,
    progress: bool = False,
    desc: str = "eval",
    tta: bool = False,
    window: tuple[int, int] | None = None,
    on_batch: BatchCallback | None = None,
    scales: tuple[float, ...] = (1.0,),
    reduce_across_processes: bool = True,
    model_size: tuple[int, int] | None = None,
) -> EvalResult:
    """The split's ``Scores`` and ``loss`` (mean over the split's labelled pixels, so it does
    not depend on the batch size or on how the split is sharded across processes).

    ``model_size``: the model's input size (the run's ``data.resize``, a checkpoint's
    ``resize``). The loader then yields images and masks at the labels' own size (batches
    grouped by size, ``loaders.collate_by_size``); each image is normalised, resized
    (bilinear) to ``model_size``, predicted, and its probabilities resized back to the
    label's size, exactly as ``Predictor`` segments an image, so the metrics are those of
    ``pixelseg predict``'s masks against the label files. The loss there is the loss of those
    upsampled probabilities (``loss_fn`` of their logarithm; for cross-entropy, their negative
    log-likelihood). Without ``model_size`` images are predicted at the size they come in.

    With ``tta``, multi-scale ``scales`` or ``window`` the loss is not computed (it would not
    be the model's loss).
    ``on_batch(probs, predictions, masks)`` lets callers accumulate more metrics. Whatever
    the flags (plain, ``tta``, ``scales``, ``window``, ``model_size``), ``probs`` are always
    probabilities, (B, C, H, W) float summing to 1 over C, at the masks' size (H, W);
    ``predictions`` are their argmax, the class maps that were scored.
    Under torchrun each rank sees a shard and the sums are reduced across ranks; a caller that
    evaluates a whole split in one process passes ``reduce_across_processes=False`` (a
    collective on one rank alone would wait forever).
    """
    model.eval()
    augmented = is_augmented(tta, scales, window)
    model_size = tuple(model_size) if model_size else None
    cm = ConfusionMatrix(num_classes, device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pixels = torch.zeros((), device=device, dtype=torch.float64)

    def score(scores, masks, is_logits: bool, loss_logits=None) -> None:
        # scores: (B, C, H, W) at the masks' size, logits when ``is_logits``, else probabilities.
        if loss_fn is not None and loss_logits is not None:
            # The loss is a mean over the batch's labelled pixels: weight it by their count.
            n = (masks != IGNORE_INDEX).sum().double()
            if n > 0:
                loss_sum.add_(loss_fn(loss_logits, masks).double() * n)
                pixels.add_(n)
        pred = class_map(scores)
        cm.update(pred, masks)
        if on_batch is not None:
            on_batch(scores.softmax(1) if is_logits else scores, pred, masks)

    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
        for images, masks in batch if isinstance(batch, list) else [batch]:
            images = normalizer(images.to(device, non_blocking=True))
            masks = masks.to(device, non_blocking=True)
            size = tuple(masks.shape[-2:])
            x = images
            if model_size and size != model_size:
                x = F.interpolate(images, size=model_size, mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=memory_format(device))
            if augmented:
                scores = predict_probs(model, x, tta=tta, scales=scales, window=window)
            else:
                with autocast(device):
                    scores = model(x).float()
            if scores.shape[-2:] == size:
                score(scores, masks, not augmented, None if augmented else scores)
                continue
            probs = scores if augmented else scores.softmax(1)
            for i in range(len(probs)):  # one at a time: full-size probabilities can be large
                p = F.interpolate(probs[i : i + 1], size=size, mode="bilinear", align_corners=False)
                # log p are logits whose softmax is p: the loss of the upsampled prediction.
                score(p, masks[i : i + 1], False, None if augmented else p.clamp_min(1e-12).log())
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if reduce_across_processes and distributed:
        cm.all_reduce()
        torch.distributed.all_reduce(loss_sum)
        torch.distributed.all_reduce(pixels)
    return EvalResult(cm.compute(), float(loss_sum / pixels) if pixels > 0 else None)
