"""Losses: names, perfect predictions, ignored pixels, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelseg.constants import IGNORE_INDEX
from pixelseg.engine.losses import LOSSES, build_loss
from pixelseg.errors import PixelsegError

C = 4


def _batch(seed: int = 0, ignore: bool = True):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, C, 8, 10, generator=g)
    target = torch.randint(0, C - 1, (2, 8, 10), generator=g)  # class C-1 absent
    if ignore:
        target[:, :2] = IGNORE_INDEX
    return logits, target


def _perfect_logits(target: torch.Tensor) -> torch.Tensor:
    onehot = nn.functional.one_hot(target.clamp(max=C - 1), C).permute(0, 3, 1, 2).float()
    return 40.0 * onehot  # softmax is one-hot to float precision


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_prediction_gives_about_zero(name):
    _, target = _batch()
    loss = build_loss(name, C)(_perfect_logits(target), target)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_do_not_contribute(name):
    logits, target = _batch()
    logits.requires_grad_(True)
    loss_fn = build_loss(name, C)
    loss = loss_fn(logits, target)
    loss.backward()
    ignored = (target == IGNORE_INDEX).unsqueeze(1).expand_as(logits)
    assert logits.grad[ignored].abs().max() == 0
    assert logits.grad[~ignored].abs().sum() > 0 and torch.isfinite(logits.grad).all()
    changed = logits.detach().clone()
    changed[ignored] = torch.randn(int(ignored.sum()))
    assert loss_fn(changed, target).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_all_ignored_batch_is_zero_not_nan(name):
    logits, target = _batch()
    logits.requires_grad_(True)
    loss = build_loss(name, C)(logits, torch.full_like(target, IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_ce_matches_torch_with_and_without_weights():
    logits, target = _batch()
    weights = [0.5, 2.0, 1.0, 3.0]
    ref = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)(logits, target)
    assert build_loss("ce", C)(logits, target).item() == pytest.approx(ref.item(), rel=1e-5)
    wref = nn.CrossEntropyLoss(torch.tensor(weights), ignore_index=IGNORE_INDEX)(logits, target)
    got = build_loss("ce", C, class_weights=weights)(logits, target)
    assert got.item() == pytest.approx(wref.item(), rel=1e-5)


def test_sums_are_sums():
    logits, target = _batch()
    ce, dice, lov = (build_loss(n, C)(logits, target) for n in ("ce", "dice", "lovasz"))
    assert build_loss("ce+dice", C)(logits, target).item() == pytest.approx((ce + dice).item())
    assert build_loss("ce+lovasz", C)(logits, target).item() == pytest.approx((ce + lov).item())


def _lovasz_reference(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-class loop straight from the paper's algorithm, for comparison."""
    losses = []
    for c in range(probs.shape[1]):
        fg = (labels == c).float()
        if fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errs, perm = errors.sort(descending=True)
        fgs = fg[perm]
        inter = fgs.sum() - fgs.cumsum(0)
        union = fgs.sum() + (1 - fgs).cumsum(0)
        jac = 1 - inter / union
        jac[1:] = jac[1:] - jac[:-1].clone()
        losses.append((errs * jac).sum())
    return torch.stack(losses).mean()


def test_lovasz_matches_the_reference_algorithm():
    logits, target = _batch(3)
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, C)
    labels = target.reshape(-1)
    keep = labels != IGNORE_INDEX
    ref = _lovasz_reference(probs[keep], labels[keep])
    assert build_loss("lovasz", C)(logits, target).item() == pytest.approx(ref.item(), rel=1e-5)


def test_dice_value_on_a_hand_example():
    # 1 pixel of class 0 predicted with p=(0.5, 0.5): dice_0 = 2*0.5/(0.5+1) = 2/3.
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    assert build_loss("dice", 2)(logits, target).item() == pytest.approx(1 / 3, rel=1e-4)


def _dice_reference(probs: torch.Tensor, labels: torch.Tensor, smooth: float = 1e-6):
    """Soft Dice over the labelled pixels' rows (P, C), classes absent from them left out."""
    onehot = nn.functional.one_hot(labels, C).float()
    dice = (2 * (probs * onehot).sum(0) + smooth) / (probs.sum(0) + onehot.sum(0) + smooth)
    return 1.0 - dice[onehot.sum(0) > 0].mean()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_dice_and_its_gradient_match_the_formula_over_the_labelled_pixels(layout):
    # The loss sums in the (B, C, H, W) layout with ignored pixels masked (it is faster than
    # gathering rows); it must equal Dice over the gathered rows, in value and gradient, for
    # the channels-last logits the models produce as well as for plain ones.
    logits, target = _batch()
    x = logits.clone().contiguous(memory_format=layout).requires_grad_()
    got = build_loss("dice", C)(x, target)
    (grad,) = torch.autograd.grad(got, x)
    y = logits.clone().requires_grad_()
    keep = (target != IGNORE_INDEX).reshape(-1)
    rows = y.softmax(1).permute(0, 2, 3, 1).reshape(-1, C)[keep]
    want = _dice_reference(rows, target.reshape(-1)[keep])
    (want_grad,) = torch.autograd.grad(want, y)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert torch.allclose(grad, want_grad, atol=1e-7)
    assert grad[:, :, :2].abs().max() == 0  # ignored rows get no gradient


def test_bad_names_and_weights():
    with pytest.raises(PixelsegError, match="unknown loss 'focal'"):
        build_loss("focal", C)
    with pytest.raises(PixelsegError, match="names a loss twice"):
        build_loss("ce+ce", C)
    with pytest.raises(PixelsegError, match="3 weights for 4 classes"):
        build_loss("ce+dice", C, class_weights=[1.0, 1.0, 1.0])
    assert isinstance(build_loss(" ce + lovasz ", C), nn.Module)


def test_training_step_reduces_dice_and_lovasz():
    torch.manual_seed(0)
    _, target = _batch(ignore=True)
    for name in ("dice", "lovasz", "ce+dice"):
        logits = torch.zeros(2, C, 8, 10, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=0.3)
        loss_fn = build_loss(name, C)
        first = loss_fn(logits, target).item()
        for _ in range(20):
            opt.zero_grad()
            loss = loss_fn(logits, target)
            loss.backward()
            opt.step()
        assert loss.item() < first * 0.7, name


def test_ohem_averages_over_the_hard_pixels_only():
    logits, target = _batch(5)
    logits.requires_grad_(True)
    loss = build_loss("ohem", C)(logits, target)
    loss.backward()
    nll = nn.functional.cross_entropy(
        logits.detach(), target, ignore_index=IGNORE_INDEX, reduction="none"
    )
    valid = target != IGNORE_INDEX
    hard = valid & (nll > -torch.log(torch.tensor(0.7)))
    assert int(hard.sum()) >= valid.sum() / 16  # this batch has enough hard pixels
    assert loss.item() == pytest.approx(nll[hard].mean().item(), rel=1e-5)
    easy = (valid & ~hard).unsqueeze(1).expand_as(logits)
    assert logits.grad[easy].abs().max() == 0  # easy pixels do not train
    assert logits.grad[hard.unsqueeze(1).expand_as(logits)].abs().sum() > 0


def test_ohem_keeps_the_hardest_share_when_few_pixels_are_hard():
    _, target = _batch(6, ignore=False)
    logits = _perfect_logits(target) / 8.0  # p_true ~ 0.9999: no pixel under 0.7
    g = torch.Generator().manual_seed(1)
    wrong = torch.randperm(target.numel(), generator=g)[:3]  # 3 pixels made hard
    flat = logits.permute(0, 2, 3, 1).reshape(-1, C)
    flat[wrong] = flat[wrong].roll(1, dims=1)
    logits = flat.reshape(2, 8, 10, C).permute(0, 3, 1, 2).contiguous()
    nll = nn.functional.cross_entropy(logits, target, reduction="none").reshape(-1)
    at_least = -(-target.numel() // 16)  # ceil: 10 of 160 pixels
    expected = nll.topk(at_least).values.mean()
    assert build_loss("ohem", C)(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ohem_class_weights_weight_the_kept_pixels():
    logits, target = _batch(7)
    weights = torch.tensor([0.5, 2.0, 1.0, 3.0])
    nll = nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none")
    hard = (target != IGNORE_INDEX) & (nll > -torch.log(torch.tensor(0.7)))
    w = weights[target.clamp(0, C - 1)] * hard
    expected = (nll * w).sum() / w.sum()
    got = build_loss("ohem", C, class_weights=weights.tolist())(logits, target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
