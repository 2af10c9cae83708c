"""Test-time augmentation and sliding-window inference (engine/inference.py).

A per-pixel model (a 1x1 convolution) sees each pixel alone, so flipping, windowing and
averaging must give exactly the plain prediction: any misplaced flip-back, window offset or
count shows up as a difference. A model with spatial context shows that the options do
change the result when they should.
"""

import pytest
import torch
from torch import nn

from pixelseg.engine.inference import predict_probs, sliding_window_probs


@pytest.fixture
def per_pixel():
    torch.manual_seed(0)
    return nn.Conv2d(3, 5, 1).eval()


@pytest.fixture
def image():
    torch.manual_seed(1)
    return torch.randn(2, 3, 37, 53)  # odd sizes: windows do not tile them evenly


def test_plain_prediction_is_the_softmax(per_pixel, image):
    probs = predict_probs(per_pixel, image)
    assert probs.shape == (2, 5, 37, 53)
    torch.testing.assert_close(probs, per_pixel(image).softmax(1))
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 37, 53))


@pytest.mark.parametrize("window", [(16, 16), (20, 31), (37, 53), (64, 64)])
def test_sliding_window_covers_every_pixel_exactly(per_pixel, image, window):
    plain = predict_probs(per_pixel, image)
    torch.testing.assert_close(sliding_window_probs(per_pixel, image, window), plain)
    torch.testing.assert_close(predict_probs(per_pixel, image, window=window), plain)


def test_flip_tta_flips_back(per_pixel, image):
    torch.testing.assert_close(
        predict_probs(per_pixel, image, tta=True), predict_probs(per_pixel, image)
    )


def test_scales_return_the_input_size_and_are_averaged(per_pixel, image):
    plain = predict_probs(per_pixel, image)
    multi = predict_probs(per_pixel, image, tta=True, scales=(0.5, 1.0, 1.5))
    assert multi.shape == plain.shape
    torch.testing.assert_close(multi.sum(1), torch.ones(2, 37, 53))
    # Resizing blurs a per-pixel map, so it differs a little, but stays close on average.
    assert 0 < (multi - plain).abs().mean() < 0.1


def test_options_change_a_model_with_context(image):
    torch.manual_seed(0)
    model = nn.Conv2d(3, 5, 7, padding=3).eval()  # not flip-equivariant, sees borders
    plain = predict_probs(model, image)
    assert not torch.allclose(predict_probs(model, image, tta=True), plain)
    assert not torch.allclose(predict_probs(model, image, window=(16, 16)), plain)
