"""Losses. All of them take logits (B, C, H, W) and an int64 target (B, H, W) and ignore
IGNORE_INDEX pixels.

Names: ``ce`` (cross-entropy), ``ohem`` (cross-entropy over the hard pixels only), ``dice``
(soft Dice), ``lovasz`` (Lovasz-softmax), and sums of them written with ``+``: ``ce+dice``,
``ce+lovasz``, ``ohem+lovasz``. Class weights, when given, weight the cross-entropy terms
only: Dice and Lovasz already average over classes, so every class present counts the same
whatever its size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError

BASE_LOSSES = ("ce", "ohem", "dice", "lovasz")
LOSSES = ("ce", "ohem", "dice", "lovasz", "ce+dice", "ce+lovasz", "ohem+lovasz")


def _dense(logits: torch.Tensor) -> torch.Tensor:
    """The logits as float32 (even under autocast) in plain NCHW layout. Models train in
    channels-last (engine/device.py); the losses that work on the softmax or rank pixels are
    faster on one plain copy of the logits (bench/loss_speed.py, 2 CPU cores: Dice 1.6x,
    Lovasz and OHEM 1.2x at 4 x 12 x 360 x 480). Plain cross-entropy gains nothing from it."""
    return logits.float().contiguous()


def _flatten(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (P, C) and labels (P,) of the pixels that are not ignored."""
    probs = _dense(logits).softmax(dim=1)  # (B, C, H, W)
    probs = probs.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])  # (B*H*W, C)
    labels = target.reshape(-1)
    keep = labels != IGNORE_INDEX
    return probs[keep], labels[keep]


def _pixel_weights(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each pixel's class weight, shaped like ``target`` (ignored pixels get a real class's
    weight here; callers mask them out)."""
    return weight[target.clamp(0, len(weight) - 1)]


class CrossEntropyLoss(nn.Module):
    """Cross-entropy averaged over the non-ignored pixels (weighted mean with class weights).

    Unlike ``nn.CrossEntropyLoss`` it returns 0, not NaN, for a batch with no labelled pixel,
    and it reduces with a plain sum, which is deterministic on GPU.
    """

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nll = F.cross_entropy(
            logits.float(), target, self.weight, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (B, H, W), 0 where ignored
        valid = target != IGNORE_INDEX
        if self.weight is None:
            denom = valid.sum()
        else:
            denom = (_pixel_weights(self.weight, target) * valid).sum()
        return nll.sum() / denom.clamp_min(1e-12)


class OhemCrossEntropyLoss(nn.Module):
    """Online hard example mining (Shrivastava et al., 2016, per pixel as in PSPNet's training):
    cross-entropy averaged over the hard pixels only, those whose probability of the true class
    is below ``threshold``, and never over fewer than the ``min_kept`` fraction of the valid
    pixels (the ones with the lowest true-class probability), so that a batch the model
    already gets right still trains on its hardest part.

    Street scenes are mostly road, sky and building pixels the model learns early; plain
    cross-entropy keeps averaging over them, which drowns the thin and small classes (pole,
    sign) where the errors are. Hardness is judged on the unweighted probability; class
    weights, when given, then weight the kept pixels as in ``CrossEntropyLoss``.
    """

    def __init__(
        self, weight: torch.Tensor | None = None, threshold: float = 0.7, min_kept: float = 1 / 16
    ) -> None:
        super().__init__()
        if not 0.0 < threshold <= 1.0 or not 0.0 < min_kept <= 1.0:
            raise PixelsegError("ohem: threshold and min_kept must lie in (0, 1]")
        self.register_buffer("weight", weight, persistent=False)
        self.max_nll = -math.log(threshold)  # p_true < threshold  <=>  nll > -log(threshold)
        self.min_kept = min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nll = F.cross_entropy(
            _dense(logits), target, ignore_index=IGNORE_INDEX, reduction="none"
        ).reshape(-1)  # unweighted, 0 where ignored
        valid = (target != IGNORE_INDEX).reshape(-1)
        n_valid = int(valid.sum())
        if n_valid == 0:
            return logits.sum() * 0.0  # nothing labelled: zero loss, graph kept
        hard = valid & (nll.detach() > self.max_nll)
        at_least = math.ceil(self.min_kept * n_valid)
        if int(hard.sum()) < at_least:  # too few hard pixels: the hardest `at_least` ones
            ranked = nll.detach().masked_fill(~valid, -1.0)  # nll >= 0, so ignored rank last
            hard = torch.zeros_like(valid)
            hard[ranked.topk(at_least).indices] = True  # exactly `at_least`, ties or not
        weight = hard.to(nll.dtype)
        if self.weight is not None:
            weight = weight * _pixel_weights(self.weight, target).reshape(-1)
        return (nll * weight).sum() / weight.sum().clamp_min(1e-12)


class DiceLoss(nn.Module):
    """1 - soft Dice, averaged over the classes present in the batch's target.

    Per class c over all valid pixels of the batch: 2 sum(p_c t_c) / (sum p_c + sum t_c).
    Classes absent from the target are left out (their Dice is undefined and would reward
    predicting nothing); ``smooth`` keeps the ratio finite.
    """

    def __init__(self, num_classes: int, smooth: float = 1e-6) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Summed in the (B, C, H, W) layout with the ignored pixels masked out, not gathered
        # into (P, C) rows: boolean indexing and a one-hot gather cost several times the
        # sums themselves on the CPU (bench/loss_speed.py).
        probs = _dense(logits).softmax(dim=1)
        valid = (target != IGNORE_INDEX).unsqueeze(1)  # (B, 1, H, W)
        classes = torch.arange(self.num_classes, device=target.device).view(1, -1, 1, 1)
        # IGNORE_INDEX is no class id (datasets hold fewer than 255 classes), so ignored
        # pixels are all-zero rows here without masking.
        onehot = (target.unsqueeze(1) == classes).to(probs.dtype)  # (B, C, H, W)
        inter = (probs * onehot).sum((0, 2, 3))  # (C,)
        in_target = onehot.sum((0, 2, 3))
        card = torch.where(valid, probs, 0.0).sum((0, 2, 3)) + in_target
        dice = (2 * inter + self.smooth) / (card + self.smooth)
        present = in_target > 0
        if not bool(present.any()):
            return logits.sum() * 0.0  # nothing labelled: zero loss, graph kept
        return 1.0 - dice[present].mean()


def _lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors, (P, C)."""
    gts = fg_sorted.sum(0, keepdim=True)  # (1, C)
    inter = gts - fg_sorted.cumsum(0)
    union = gts + (1 - fg_sorted).cumsum(0)
    jaccard = 1.0 - inter / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)


class LovaszSoftmaxLoss(nn.Module):
    """Lovasz-softmax (Berman et al., 2018): a convex surrogate of 1 - IoU per class, averaged
    over the classes present in the batch's target (all valid pixels of the batch together)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, labels = _flatten(logits, target)  # (P, C), (P,)
        if labels.numel() == 0:
            return logits.sum() * 0.0
        fg = F.one_hot(labels, self.num_classes).to(probs.dtype)  # (P, C)
        errors = (fg - probs).abs()
        errors_sorted, order = errors.sort(dim=0, descending=True)  # each class on its own
        grad = _lovasz_grad(fg.gather(0, order))
        per_class = (errors_sorted * grad).sum(0)  # (C,)
        present = fg.sum(0) > 0
        return per_class[present].mean()


class SumLoss(nn.Module):
    """The sum of several losses, e.g. ``ce+dice``."""

    def __init__(self, losses: list[nn.Module]) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(loss(logits, target) for loss in self.losses)


def _build_one(name: str, num_classes: int, weight: torch.Tensor | None) -> nn.Module:
    if name == "ce":
        return CrossEntropyLoss(weight)
    if name == "ohem":
        return OhemCrossEntropyLoss(weight)
    if name == "dice":
        return DiceLoss(num_classes)
    if name == "lovasz":
        return LovaszSoftmaxLoss(num_classes)
    raise PixelsegError(
        f"train.loss: unknown loss {name!r}; choose from {', '.join(LOSSES)} "
        "(or any sum of ce, ohem, dice, lovasz joined by '+')"
    )


def build_loss(name: str, num_classes: int, class_weights: list[float] | None = None) -> nn.Module:
    """Build a loss by name (see the module docstring), e.g. ``build_loss("ce+dice", 11)``.
    ``class_weights`` (one per class) weight the cross-entropy term."""
    weight = None
    if class_weights is not None:
        if len(class_weights) != num_classes:
            raise PixelsegError(
                f"train.class_weights: {len(class_weights)} weights for {num_classes} classes"
            )
        weight = torch.tensor(class_weights, dtype=torch.float32)
    parts = [p.strip() for p in name.split("+")]
    if len(parts) == 1:
        return _build_one(parts[0], num_classes, weight)
    if len(set(parts)) != len(parts):
        raise PixelsegError(f"train.loss: {name!r} names a loss twice")
    return SumLoss([_build_one(p, num_classes, weight) for p in parts])
