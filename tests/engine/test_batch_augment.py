"""On-device batched augmentation (kornia): masks stay aligned with images, exposed pixels are
ignored, parameters are reproducible, and a no-op configuration changes nothing."""

from __future__ import annotations

import pytest
import torch

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.transforms import AugmentParams
from pixelseg.engine.batch_augment import BatchAugment

# Class k is painted with colour PALETTE[k]: alignment can be read back from the image.
PALETTE = torch.tensor([[220, 20, 20], [20, 220, 20], [20, 20, 220], [220, 220, 20]])
GEOMETRY = AugmentParams(
    rotation=30, scale=(0.7, 1.4), hflip=0.5, vflip=0.5, brightness=0, contrast=0, saturation=0
)


def colour_coded_batch(b=6, h=48, w=64, block=8):
    g = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, len(PALETTE), (b, h // block, w // block), generator=g)
    masks = coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)  # (B, H, W)
    masks[:, :2, :2] = IGNORE_INDEX  # already-ignored pixels must stay ignored
    images = PALETTE[masks.clamp(max=len(PALETTE) - 1)].permute(0, 3, 1, 2).to(torch.uint8)
    images[:, :, :2, :2] = 0  # ignored pixels are black, like exposed ones
    return images, masks


def decode(images: torch.Tensor) -> torch.Tensor:
    """Nearest palette entry of each pixel, (B, H, W)."""
    d = (images.permute(0, 2, 3, 1)[..., None, :] - PALETTE.float()).pow(2).sum(-1)
    return d.argmin(-1)


def test_mask_stays_aligned_with_the_image():
    images, masks = colour_coded_batch()
    aug = BatchAugment(GEOMETRY, seed=3)
    aug.set_epoch(1)
    out_i, out_m = aug(images, masks)
    assert out_i.shape == images.shape and out_m.shape == masks.shape
    assert out_m.dtype == masks.dtype and out_i.dtype == torch.float32
    valid = out_m != IGNORE_INDEX
    exposed = ~valid
    assert 0.02 < exposed.float().mean() < 0.6  # rotation/zoom-out exposed some border
    # Only block edges can disagree (bilinear blends two colours there): >= 97% agree.
    agree = (decode(out_i) == out_m)[valid].float().mean()
    assert agree >= 0.97
    # Ignored pixels are black in the image (up to bilinear blending at their rim).
    dark = out_i.permute(0, 2, 3, 1)[exposed].amax(-1) < 60
    assert dark.float().mean() > 0.9
    assert not torch.equal(out_m, masks)  # something did move


def test_flip_only_is_exact_and_jitter_leaves_masks_alone():
    images, masks = colour_coded_batch(b=2)
    p = AugmentParams(
        rotation=0, scale=(1, 1), hflip=1.0, vflip=0, brightness=0.3, contrast=0.3, saturation=0.3
    )
    aug = BatchAugment(p)
    aug.set_epoch(1)
    out_i, out_m = aug(images, masks)
    assert torch.equal(out_m, masks.flip(-1))
    assert out_i.min() >= 0 and out_i.max() <= 255
    assert (out_i - images.float().flip(-1)).abs().max() > 1  # colours were jittered


def test_no_op_parameters_change_nothing():
    images, masks = colour_coded_batch(b=2)
    p = AugmentParams(
        rotation=0, scale=(1, 1), hflip=0, vflip=0, brightness=0, contrast=0, saturation=0
    )
    aug = BatchAugment(p)
    aug.set_epoch(1)
    out_i, out_m = aug(images, masks)
    assert torch.equal(out_m, masks) and torch.equal(out_i, images.float())


@pytest.mark.parametrize("same", [True, False])
def test_parameters_are_reproducible_per_epoch(same):
    images, masks = colour_coded_batch(b=3)
    a, b = BatchAugment(GEOMETRY, seed=7), BatchAugment(GEOMETRY, seed=7)
    a.set_epoch(2)
    b.set_epoch(2 if same else 3)
    ma, mb = a(images, masks)[1], b(images, masks)[1]
    assert torch.equal(ma, mb) == same
