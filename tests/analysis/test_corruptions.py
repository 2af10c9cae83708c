"""Corruptions: shapes, determinism, damage growing with severity, masks moving with images."""

import doctest

import numpy as np
import pytest
from scipy import ndimage

from pixelseg.analysis import corruptions
from pixelseg.analysis.corruptions import CORRUPTIONS, GEOMETRIC, SEVERITIES, corrupt
from pixelseg.constants import IGNORE_INDEX
from pixelseg.errors import PixelsegError

PALETTE = np.array([[20, 40, 200], [220, 30, 30], [30, 200, 60], [240, 220, 40]], np.uint8)
PHOTOMETRIC = [n for n in CORRUPTIONS if n not in GEOMETRIC]


def class_scene(h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Large blocks whose colour encodes their class, so a pixel's colour says its label."""
    mask = np.zeros((h, w), np.int64)
    mask[6:30, 8:34] = 1
    mask[20:44, 38:60] = 2
    mask[32:46, 4:22] = 3
    return PALETTE[mask].copy(), mask


def textured_image(h: int, w: int) -> np.ndarray:
    """Class colours plus smoothed noise: texture, so blur and pixelation visibly hurt."""
    _, mask = class_scene(h, w)
    rng = np.random.default_rng(123)
    noise = ndimage.gaussian_filter(rng.normal(0, 50, (h, w, 3)), (1, 1, 0))
    return np.clip(PALETTE[mask] * 0.6 + 50 + noise, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_suite_is_complete():
    expected = {
        "gaussian_noise",
        "shot_noise",
        "gaussian_blur",
        "motion_blur",
        "brightness",
        "contrast",
        "jpeg",
        "pixelate",
        "rotate",
        "scale",
    }
    assert set(CORRUPTIONS) == expected
    assert GEOMETRIC == {"rotate", "scale"}
    assert all(len(corruptions.PARAMS[n]) == len(SEVERITIES) for n in CORRUPTIONS)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_shape_dtype_and_determinism(name):
    image, mask = class_scene(37, 51)  # odd sizes
    for severity in SEVERITIES:
        a, ma = corrupt(image, mask, name, severity, np.random.default_rng(7))
        b, mb = corrupt(image, mask, name, severity, 7)  # an int seed is the same generator
        assert a.shape == image.shape and a.dtype == np.uint8
        assert ma.shape == mask.shape and ma.dtype == np.int64
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a, image)  # severity 5 always changes the image


def test_noise_depends_on_seed():
    image, mask = class_scene()
    a, _ = corrupt(image, mask, "gaussian_noise", 3, 0)
    b, _ = corrupt(image, mask, "gaussian_noise", 3, 1)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", PHOTOMETRIC)
def test_photometric_damage_grows_with_severity_and_keeps_mask(name):
    image = textured_image(61, 83)  # odd size: no resize factor lands on the block grid
    mask = np.zeros(image.shape[:2], np.int64)
    scores = []
    for severity in SEVERITIES:
        out, out_mask = corrupt(image, mask, name, severity, np.random.default_rng(0))
        assert out_mask is mask  # labels do not move
        scores.append(psnr(image, out))
    assert all(a > b for a, b in zip(scores, scores[1:])), (name, scores)


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
@pytest.mark.parametrize("seed", range(4))  # both directions (sign of angle, zoom in or out)
def test_geometric_moves_mask_with_image(name, seed):
    image, mask = class_scene()
    for severity in (1, 3, 5):
        out, out_mask = corrupt(image, mask, name, severity, np.random.default_rng(seed))
        labelled = out_mask != IGNORE_INDEX
        assert set(np.unique(out_mask[labelled])) <= {0, 1, 2, 3}
        # Away from class edges (where bilinear colours blend) the colour must say the label.
        # The frame is excluded: a class edge just beyond it is invisible to the 5x5 window.
        same = ndimage.maximum_filter(out_mask, 5) == ndimage.minimum_filter(out_mask, 5)
        interior = labelled & same
        interior[:2], interior[-2:], interior[:, :2], interior[:, -2:] = False, False, False, False
        assert interior.sum() > 0.15 * mask.size
        diff = np.abs(out[interior].astype(int) - PALETTE[out_mask[interior]].astype(int))
        assert diff.max() <= 2
        # Exposed pixels are ignored in the mask and black in the image.
        exposed = out_mask == IGNORE_INDEX
        if exposed.any():
            inner = ndimage.binary_erosion(exposed, iterations=2)
            assert (out[inner] == 0).all()


def test_rotation_exposes_corners_more_with_severity():
    image, mask = class_scene()
    ignored = []
    for severity in SEVERITIES:
        _, m = corrupt(image, mask, "rotate", severity, np.random.default_rng(0))
        assert m[0, 0] == IGNORE_INDEX or m[0, -1] == IGNORE_INDEX
        ignored.append((m == IGNORE_INDEX).mean())
    assert all(a < b for a, b in zip(ignored, ignored[1:]))


def test_scale_zooms_both_ways():
    image, mask = class_scene()
    kinds = set()
    for seed in range(8):
        _, m = corrupt(image, mask, "scale", 4, np.random.default_rng(seed))
        kinds.add("out" if (m == IGNORE_INDEX).any() else "in")
    assert kinds == {"in", "out"}


def test_mask_may_be_none():
    image, _ = class_scene()
    for name in CORRUPTIONS:
        out, m = corrupt(image, None, name, 2, 0)
        assert m is None and out.shape == image.shape


def test_bad_arguments():
    image, mask = class_scene()
    with pytest.raises(PixelsegError, match="unknown corruption"):
        corrupt(image, mask, "fog", 1, 0)
    with pytest.raises(PixelsegError, match="severity"):
        corrupt(image, mask, "jpeg", 6, 0)
    with pytest.raises(ValueError):
        corrupt(image.astype(np.float32), mask, "jpeg", 1, 0)


def test_docstring_examples():
    assert doctest.testmod(corruptions).failed == 0


def _scipy_warp(image, mask, matrix):
    """The warp robustness used before it shared data.transforms.affine_pair (scipy, row/col
    coordinates, output -> input), kept here as the reference it must still agree with."""
    h, w = mask.shape
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    offset = centre - matrix @ centre
    out = np.stack(
        [
            ndimage.affine_transform(image[..., c].astype(float), matrix, offset=offset, order=1)
            for c in range(3)
        ],
        -1,
    )
    warped = ndimage.affine_transform(
        mask, matrix, offset=offset, order=0, cval=IGNORE_INDEX, output=np.int64
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), warped


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
@pytest.mark.parametrize("seed", [0, 1])
def test_geometric_corruptions_are_the_training_warp_and_agree_with_scipy(name, seed):
    """rotate and scale are data.transforms.affine_pair (the one CPU warp), and move pixels
    the way the earlier scipy implementation did: the same labels away from edges."""
    from pixelseg.data.transforms import affine_pair

    image, mask = class_scene()
    severity = 4
    out, m = corrupt(image, mask, name, severity, np.random.default_rng(seed))
    sign = 1.0 if np.random.default_rng(seed).random() < 0.5 else -1.0
    if name == "rotate":
        angle, zoom = corruptions.PARAMS["rotate"][severity - 1] * sign, 1.0
        t = np.deg2rad(angle)
        matrix = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    else:
        f = corruptions.PARAMS["scale"][severity - 1]
        angle, zoom = 0.0, f if sign > 0 else 1.0 / f
        matrix = np.eye(2) / zoom
    ref_out, ref_m = affine_pair(image, mask, angle, zoom)
    assert np.array_equal(out, ref_out) and np.array_equal(m, ref_m)
    old_out, old_m = _scipy_warp(image, mask, matrix)
    assert (m == old_m).mean() > 0.97  # only pixels on class and frame edges may differ
    assert np.abs(out.astype(int) - old_out.astype(int)).mean() < 4
