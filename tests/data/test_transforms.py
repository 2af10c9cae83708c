"""A mask must stay aligned with its image after every transform: the test image's colour
encodes the class of each pixel, so alignment can be read back exactly."""

import numpy as np
import pytest
import torch

from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.transforms import (
    AugmentParams,
    EvalTransform,
    Normalizer,
    TrainTransform,
    affine_pair,
    inverse_affine,
    random_crop_pair,
    warp_pair,
)

LEVELS = np.array([0, 60, 120, 180, 240])  # grey level of class k


def striped_pair(h=48, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    mask = ((xx // 8 + yy // 12) % 5).astype(np.int64)  # big blocks: interpolation stays inside
    image = np.repeat(LEVELS[mask][:, :, None], 3, axis=2).astype(np.uint8)
    return image, mask


def assert_aligned(image, mask, tol=0.97):
    valid = mask != IGNORE_INDEX
    # Away from block edges bilinear resampling keeps the exact grey level.
    grey = image[:, :, 0].astype(int)
    exact = np.isin(grey, LEVELS)
    check = valid & exact
    assert check.sum() > 0.3 * mask.size
    agree = LEVELS[mask[check]] == grey[check]
    assert agree.mean() >= tol


@pytest.mark.parametrize(
    "angle, scale, hflip, vflip",
    [
        (0, 1.0, True, False),
        (0, 1.0, False, True),
        (15, 1.0, False, False),
        (0, 1.3, False, False),
        (-20, 0.8, True, True),
    ],
)
def test_affine_keeps_alignment(angle, scale, hflip, vflip):
    image, mask = striped_pair()
    img2, mask2 = affine_pair(image, mask, angle, scale, hflip, vflip)
    assert img2.shape == image.shape and mask2.shape == mask.shape
    assert_aligned(img2, mask2)
    if angle or scale < 1:
        assert (mask2 == IGNORE_INDEX).any()  # exposed corners are ignored, not class 0


def test_flip_is_exact():
    image, mask = striped_pair()
    img2, mask2 = affine_pair(image, mask, 0, 1.0, True, False)
    assert np.array_equal(mask2, mask[:, ::-1]) and np.array_equal(img2, image[:, ::-1])


@pytest.mark.parametrize("size", [(7, 9), (8, 10), (31, 17)])
@pytest.mark.parametrize("hflip, vflip", [(True, False), (False, True), (True, True)])
def test_flips_by_slicing_equal_the_warp(size, hflip, vflip):
    # Pure flips skip the PIL warp: the shortcut must agree with it pixel for pixel, at odd
    # and even sizes.
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, size).astype(np.int64)
    fast_img, fast_mask = affine_pair(image, mask, 0, 1.0, hflip, vflip)
    warp_img, warp_mask = warp_pair(image, mask, inverse_affine(size, 0, 1.0, hflip, vflip))
    assert np.array_equal(fast_img, warp_img) and np.array_equal(fast_mask, warp_mask)
    assert fast_mask.dtype == warp_mask.dtype == np.int64
    assert fast_img.flags.c_contiguous and affine_pair(image, None, 0, 1.0, hflip)[1] is None


def test_crop_pads_with_ignore_when_too_small():
    image, mask = striped_pair(20, 30)
    img2, mask2 = random_crop_pair(image, mask, (32, 32), np.random.default_rng(0))
    assert img2.shape == (32, 32, 3) and mask2.shape == (32, 32)
    assert (mask2[20:] == IGNORE_INDEX).all()


def test_full_train_transform_keeps_alignment_and_is_seeded():
    image, mask = striped_pair()
    t = TrainTransform(
        AugmentParams(
            rotation=20,
            scale=(0.8, 1.25),
            hflip=0.5,
            vflip=0.5,
            brightness=0,
            contrast=0,
            saturation=0,
        ),
        crop_size=(32, 40),
    )
    for seed in range(10):
        img2, mask2 = t(image, mask, np.random.default_rng(seed))
        assert img2.shape == (32, 40, 3)
        assert_aligned(img2, mask2, tol=0.95)
    a = t(image, mask, np.random.default_rng(3))
    b = t(image, mask, np.random.default_rng(3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_colour_jitter_leaves_the_mask_alone():
    image, mask = striped_pair()
    t = TrainTransform(AugmentParams(rotation=0, scale=(1, 1), hflip=0, brightness=0.5))
    img2, mask2 = t(image, mask, np.random.default_rng(0))
    assert np.array_equal(mask2, mask) and not np.array_equal(img2, image)


def test_eval_transform_resizes_mask_with_nearest():
    image, mask = striped_pair()
    img2, mask2 = EvalTransform((24, 32))(image, mask)
    assert img2.shape == (24, 32, 3)
    assert set(np.unique(mask2)) <= set(range(5))


def test_normalizer_round_numbers():
    n = Normalizer(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = n(x)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(-1.0)) and torch.allclose(
        out[0, :, 0, 1], torch.tensor(1.0)
    )


@pytest.mark.parametrize("size", [(24, 32), (96, 128), (37, 53), (48, 64)])
def test_resize_pair_keeps_alignment_and_is_the_shared_resizers(size):
    """The training resize and the stability check's resizes are one pair of functions."""
    from pixelseg.data.transforms import resize_image, resize_labels, resize_pair

    image, mask = striped_pair()
    img2, mask2 = resize_pair(image, mask, size)
    assert img2.shape == (*size, 3) and mask2.shape == size and mask2.dtype == np.int64
    assert_aligned(img2, mask2, tol=0.95)
    assert np.array_equal(img2, resize_image(image, size) if size != (48, 64) else image)
    assert np.array_equal(mask2, resize_labels(mask, size))


def test_resize_labels_is_pil_nearest_and_keeps_any_integer_dtype():
    from PIL import Image

    from pixelseg.data.transforms import resize_labels

    _, mask = striped_pair()
    for h, w in [(24, 32), (96, 128), (144, 192), (12, 16)]:  # no pixel centre on a tie
        pil = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((w, h), Image.NEAREST))
        assert np.array_equal(resize_labels(mask, (h, w)), pil)
    big = mask * 1000  # ids beyond uint8 survive (a prediction of many classes)
    assert np.array_equal(resize_labels(big, (96, 128)), resize_labels(mask, (96, 128)) * 1000)
