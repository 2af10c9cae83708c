"""Photometric corruptions in the data layer: the one implementation analysis also uses."""

import doctest

import numpy as np
import pytest

from pixelseg.analysis.corruptions import CORRUPTIONS, GEOMETRIC, corrupt
from pixelseg.data import corruptions
from pixelseg.data.corruptions import PHOTOMETRIC, PHOTOMETRIC_PARAMS, apply_corruption
from pixelseg.errors import PixelsegError


def test_analysis_uses_the_data_layer_functions():
    assert set(PHOTOMETRIC) == set(CORRUPTIONS) - GEOMETRIC
    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    mask = np.zeros((20, 24), np.int64)
    for name in PHOTOMETRIC:
        out, same = corrupt(image, mask, name, 3, rng=7)
        assert same is mask
        assert np.array_equal(out, apply_corruption(image, name, 3, rng=7)), name


def test_bad_arguments():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(PixelsegError, match="unknown photometric corruption 'rotate'"):
        apply_corruption(image, "rotate", 1, 0)
    with pytest.raises(PixelsegError, match="severity"):
        apply_corruption(image, "jpeg", 0, 0)
    with pytest.raises(ValueError):
        apply_corruption(image[..., 0], "jpeg", 1, 0)


def test_docstring_examples():
    assert doctest.testmod(corruptions).failed == 0


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_brightness_is_the_hsv_round_trip(severity):
    # The definition (ImageNet-C's): add c to HSV value, clip, convert back. The cheap per-pixel
    # rescaling must agree with it to a grey level, black and saturated pixels included.
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    rng = np.random.default_rng(severity)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image[:5] = 0  # black
    image[5:10, :, 0] = 255  # value already 1 in the red channel
    image[10:15] = rng.integers(0, 256, (5, 50, 1), dtype=np.uint8)  # greys
    hsv = rgb_to_hsv(image / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + PHOTOMETRIC_PARAMS["brightness"][severity - 1], 0, 1)
    expected = np.clip(np.rint(hsv_to_rgb(hsv) * 255), 0, 255)
    out = apply_corruption(image, "brightness", severity, rng=0)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert (
        out[:5].min()
        == out[:5].max()
        == round(255 * PHOTOMETRIC_PARAMS["brightness"][severity - 1])
    )
