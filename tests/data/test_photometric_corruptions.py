"""Photometric corruptions in the data layer: the one implementation analysis also uses."""

import doctest

import numpy as np
import pytest

from pixelseg.analysis.corruptions import CORRUPTIONS, GEOMETRIC, corrupt
from pixelseg.data import corruptions
from pixelseg.data.corruptions import PHOTOMETRIC, apply_corruption
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
