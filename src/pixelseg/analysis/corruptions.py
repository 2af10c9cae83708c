"""Image corruptions at five severities, for robustness evaluation of segmentation models.

Photometric corruptions follow Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations" (ICLR 2019, ImageNet-C); their severity parameters are
copied from the reference implementation unless noted. Geometric corruptions (rotate, scale)
follow the spirit of ImageNet-P and move the mask with the image.

Every corruption takes a uint8 RGB image (H, W, 3) and returns one of the same shape and dtype;
the mask (H, W) int64 is returned unchanged by photometric corruptions, and transformed with
nearest-neighbour sampling by geometric ones, areas exposed by the transform becoming
``IGNORE_INDEX``. All randomness comes from the ``numpy.random.Generator`` passed in, so a seed
gives the same output every time.

Severity parameters (severity 1 -> 5):

==============  ========================================================================
gaussian_noise  std of additive noise on [0, 1] pixels: .08 .12 .18 .26 .38
shot_noise      Poisson photon count scale (fewer photons = noisier): 60 25 12 5 3
gaussian_blur   sigma in pixels: 1 2 3 4 6
motion_blur     (radius, sigma) in pixels, angle U(-45, 45) deg: (10,3) (15,5) (15,8)
                (15,12) (20,15). Unlike ImageNet-C's one-sided Wand kernel the kernel is
                symmetric, so blurred objects stay centred on their labels.
brightness      added to HSV value: .1 .2 .3 .4 .5
contrast        factor towards the per-channel mean: .4 .3 .2 .1 .05
jpeg            JPEG quality: 25 18 15 10 7
pixelate        downscale factor (box filter down and up): .6 .5 .4 .3 .25
rotate          angle in degrees, random sign: 3 6 9 12 15 (bilinear image, nearest mask)
scale           zoom factor, zoom in or out (1/f) at random: 1.05 1.1 1.2 1.3 1.5
==============  ========================================================================

Blur and noise parameters are absolute (pixels, as in ImageNet-C at 224 px), not relative to
the image size, so large images are relatively less damaged by blur.

Example::

    rng = np.random.default_rng(0)
    noisy, same_mask = corrupt(image, mask, "gaussian_noise", 3, rng)
    rotated, rotated_mask = corrupt(image, mask, "rotate", 2, rng)
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError

SEVERITIES = (1, 2, 3, 4, 5)

# One tuple per corruption, indexed by severity - 1 (see the module docstring).
PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "jpeg": (25, 18, 15, 10, 7),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "rotate": (3, 6, 9, 12, 15),
    "scale": (1.05, 1.1, 1.2, 1.3, 1.5),
}

# Corruptions that move pixels: their mask is transformed too.
GEOMETRIC = frozenset({"rotate", "scale"})

Mask = np.ndarray | None
Rng = np.random.Generator
Result = tuple[np.ndarray, Mask]
CorruptionFn = Callable[[np.ndarray, Mask, int, Rng], Result]


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _gaussian_noise(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    c = PARAMS["gaussian_noise"][severity - 1]
    x = _to_float(image)
    return _to_uint8(x + rng.normal(0.0, c, size=x.shape)), mask


def _shot_noise(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    c = PARAMS["shot_noise"][severity - 1]
    x = _to_float(image)
    return _to_uint8(rng.poisson(x * c) / c), mask


def _gaussian_blur(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    sigma = PARAMS["gaussian_blur"][severity - 1]
    x = _to_float(image)
    return _to_uint8(ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest")), mask


def _motion_kernel(radius: int, sigma: float, angle_deg: float) -> list[tuple[int, int, float]]:
    """Sparse line kernel: (dy, dx, weight) with Gaussian weights along the line, summing to 1."""
    theta = np.deg2rad(angle_deg)
    taps: dict[tuple[int, int], float] = {}
    for t in range(-radius, radius + 1):
        dy, dx = int(round(t * np.sin(theta))), int(round(t * np.cos(theta)))
        taps[(dy, dx)] = taps.get((dy, dx), 0.0) + float(np.exp(-(t * t) / (2.0 * sigma * sigma)))
    total = sum(taps.values())
    return [(dy, dx, w / total) for (dy, dx), w in taps.items()]


def _motion_blur(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    radius, sigma = PARAMS["motion_blur"][severity - 1]
    angle = rng.uniform(-45.0, 45.0)
    x = _to_float(image)
    h, w = x.shape[:2]
    # The kernel is a line (at most 2r+1 taps), so a sum of shifted copies is much cheaper than
    # a dense (2r+1)^2 convolution.
    padded = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for dy, dx, weight in _motion_kernel(radius, sigma, angle):
        out += weight * padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
    return _to_uint8(out), mask


def _brightness(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    c = PARAMS["brightness"][severity - 1]
    hsv = rgb_to_hsv(_to_float(image))
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0.0, 1.0)
    return _to_uint8(hsv_to_rgb(hsv)), mask


def _contrast(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    c = PARAMS["contrast"][severity - 1]
    x = _to_float(image)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8((x - mean) * c + mean), mask


def _jpeg(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    quality = PARAMS["jpeg"][severity - 1]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.uint8).copy(), mask


def _pixelate(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    c = PARAMS["pixelate"][severity - 1]
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize(
        (max(1, int(w * c)), max(1, int(h * c))), Image.Resampling.BOX
    )
    return np.asarray(small.resize((w, h), Image.Resampling.BOX), dtype=np.uint8).copy(), mask


def _warp(image: np.ndarray, mask: Mask, matrix: np.ndarray) -> tuple[np.ndarray, Mask]:
    """Apply ``input_coord = matrix @ (output_coord - centre) + centre`` (row, col coordinates).

    Bilinear for the image (exposed areas black), nearest for the mask (exposed areas ignored),
    with the same transform, so labels stay on their pixels.
    """
    h, w = image.shape[:2]
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    offset = centre - matrix @ centre
    x = image.astype(np.float64)
    out = np.empty_like(x)
    for ch in range(x.shape[2]):
        out[..., ch] = ndimage.affine_transform(
            x[..., ch], matrix, offset=offset, order=1, mode="constant", cval=0.0
        )
    warped = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if mask is None:
        return warped, None
    warped_mask = ndimage.affine_transform(
        np.asarray(mask, dtype=np.int64),
        matrix,
        offset=offset,
        order=0,
        mode="constant",
        cval=IGNORE_INDEX,
        output=np.int64,
    )
    # Nearest sampling keeps a label up to half a pixel beyond the frame, where the bilinear
    # image is already blended with the black fill: ignore every pixel that saw the fill.
    coverage = ndimage.affine_transform(
        np.ones((h, w)), matrix, offset=offset, order=1, mode="constant", cval=0.0
    )
    warped_mask[coverage < 1.0 - 1e-6] = IGNORE_INDEX
    return warped, warped_mask


def _rotate(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    angle = PARAMS["rotate"][severity - 1] * (1.0 if rng.random() < 0.5 else -1.0)
    t = np.deg2rad(angle)
    # Output -> input mapping of a rotation by ``angle`` about the centre (row, col axes).
    matrix = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return _warp(image, mask, matrix)


def _scale(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    factor = PARAMS["scale"][severity - 1]
    zoom = factor if rng.random() < 0.5 else 1.0 / factor
    return _warp(image, mask, np.eye(2) / zoom)


CORRUPTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "gaussian_blur": _gaussian_blur,
    "motion_blur": _motion_blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "jpeg": _jpeg,
    "pixelate": _pixelate,
    "rotate": _rotate,
    "scale": _scale,
}


def corrupt(
    image: np.ndarray,
    mask: np.ndarray | None,
    name: str,
    severity: int,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Corrupt ``image`` (and, for geometric corruptions, ``mask``) by ``name`` at ``severity``.

    ``rng`` is a numpy Generator, or a seed for a new one. ``mask`` may be None (images without
    labels). Returns ``(image, mask)``; the mask is the same object when it is not moved.

    >>> img = np.zeros((8, 8, 3), np.uint8); msk = np.zeros((8, 8), np.int64)
    >>> out, m = corrupt(img, msk, "brightness", 5, rng=0)
    >>> out.shape, out.dtype, m is msk
    ((8, 8, 3), dtype('uint8'), True)
    """
    if name not in CORRUPTIONS:
        raise PixelsegError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise PixelsegError(f"corruption severity must be 1..5, got {severity!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if mask is not None and np.shape(mask) != image.shape[:2]:
        raise ValueError(f"mask shape {np.shape(mask)} does not match image {image.shape[:2]}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return CORRUPTIONS[name](image, mask, severity, rng)
