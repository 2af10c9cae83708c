"""Evaluation loop: loss and a confusion matrix over a whole split."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from ..data.transforms import Normalizer
from ..metrics import ConfusionMatrix
from .device import autocast


@torch.no_grad()
def evaluate(model: nn.Module, loader, normalizer: Normalizer, num_classes: int,
             device: torch.device, loss_fn: nn.Module | None = None, progress: bool = False,
             desc: str = "eval") -> dict:
    """Returns the ConfusionMatrix metrics plus ``loss`` (mean over valid pixels' batches)."""
    model.eval()
    cm = ConfusionMatrix(num_classes, device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    batches = torch.zeros((), device=device, dtype=torch.float64)
    for images, masks in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
        images = normalizer(images.to(device, non_blocking=True))
        masks = masks.to(device, non_blocking=True)
        with autocast(device):
            logits = model(images)
        if loss_fn is not None:
            loss_sum += loss_fn(logits.float(), masks).double()
            batches += 1
        cm.update(logits.argmax(1), masks)
    cm.all_reduce()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(loss_sum)
        torch.distributed.all_reduce(batches)
    result = cm.compute()
    result["loss"] = float(loss_sum / batches) if batches > 0 else None
    return result
