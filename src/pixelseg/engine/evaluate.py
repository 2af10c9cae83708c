"""Evaluation loop: loss and a confusion matrix over a whole split."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from ..constants import IGNORE_INDEX
from ..data.transforms import Normalizer
from ..metrics import ConfusionMatrix
from .device import autocast
from .inference import is_augmented, predict_probs


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
    on_batch=None,
    scales: tuple[float, ...] = (1.0,),
    reduce_across_processes: bool = True,
) -> dict:
    """Returns the ConfusionMatrix metrics plus ``loss`` (mean over the split's labelled pixels,
    so it does not depend on the batch size or on how the split is sharded across processes).

    With ``tta``, multi-scale ``scales`` or ``window`` the loss is not computed (it would not
    be the model's loss).
    ``on_batch(probs_or_logits, predictions, masks)`` lets callers accumulate more metrics.
    Under torchrun each rank sees a shard and the sums are reduced across ranks; a caller that
    evaluates a whole split in one process passes ``reduce_across_processes=False`` (a
    collective on one rank alone would wait forever).
    """
    model.eval()
    augmented = is_augmented(tta, scales, window)
    cm = ConfusionMatrix(num_classes, device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pixels = torch.zeros((), device=device, dtype=torch.float64)
    for images, masks in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
        images = normalizer(images.to(device, non_blocking=True))
        masks = masks.to(device, non_blocking=True)
        if augmented:
            scores = predict_probs(model, images, tta=tta, scales=scales, window=window)
        else:
            with autocast(device):
                scores = model(images).float()
            if loss_fn is not None:
                # The loss is a mean over the batch's labelled pixels: weight it by their count.
                n = (masks != IGNORE_INDEX).sum().double()
                loss_sum += loss_fn(scores, masks).double() * n
                pixels += n
        pred = scores.argmax(1)
        cm.update(pred, masks)
        if on_batch is not None:
            on_batch(scores, pred, masks)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if reduce_across_processes and distributed:
        cm.all_reduce()
        torch.distributed.all_reduce(loss_sum)
        torch.distributed.all_reduce(pixels)
    result = cm.compute()
    result["loss"] = float(loss_sum / pixels) if pixels > 0 else None
    return result
