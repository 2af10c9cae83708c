"""Image corruptions at five severities, for robustness evaluation of segmentation models.

The photometric corruptions live in ``pixelseg.data.corruptions`` (training-time augmentation,
``augment.corruptions``, uses the same functions); this module adds the geometric ones and the
``(image, mask)`` interface. Photometric corruptions follow Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations" (ICLR 2019,
ImageNet-C); their severity parameters are copied from the reference implementation unless
noted. Geometric corruptions (rotate, scale) follow the spirit of ImageNet-P and move the mask
with the image.

Every corruption takes a uint8 RGB image (H, W, 3) and returns one of the same shape and dtype;
the mask (H, W) int64 is returned unchanged by photometric corruptions, and transformed with
nearest-neighbour sampling by geometric ones, areas exposed by the transform becoming
``IGNORE_INDEX``. All randomness comes from the ``numpy.random.Generator`` passed in, so a seed
gives the same output every time.

Severity parameters (severity 1 -> 5): the photometric ones are listed in
``pixelseg.data.corruptions``; the geometric ones are:

==============  ========================================================================
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

from collections.abc import Callable

import numpy as np

from ..data.corruptions import PHOTOMETRIC, PHOTOMETRIC_PARAMS, SEVERITIES, PhotometricFn
from ..data.transforms import affine_pair
from ..errors import PixelsegError

# One tuple per corruption, indexed by severity - 1 (see the module docstring).
PARAMS: dict[str, tuple] = {
    **PHOTOMETRIC_PARAMS,
    "rotate": (3, 6, 9, 12, 15),
    "scale": (1.05, 1.1, 1.2, 1.3, 1.5),
}

# Corruptions that move pixels: their mask is transformed too.
GEOMETRIC = frozenset({"rotate", "scale"})

Mask = np.ndarray | None
Rng = np.random.Generator
Result = tuple[np.ndarray, Mask]
CorruptionFn = Callable[[np.ndarray, Mask, int, Rng], Result]


def _keep_mask(fn: PhotometricFn) -> CorruptionFn:
    """A photometric corruption in the ``(image, mask, severity, rng) -> (image, mask)`` form."""

    def corruption(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
        return fn(image, severity, rng), mask

    corruption.__name__ = f"_{fn.__name__}"
    return corruption


def _rotate(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    angle = PARAMS["rotate"][severity - 1] * (1.0 if rng.random() < 0.5 else -1.0)
    return affine_pair(image, mask, angle, 1.0)


def _scale(image: np.ndarray, mask: Mask, severity: int, rng: Rng) -> Result:
    factor = PARAMS["scale"][severity - 1]
    zoom = factor if rng.random() < 0.5 else 1.0 / factor
    return affine_pair(image, mask, 0.0, zoom)


CORRUPTIONS: dict[str, CorruptionFn] = {
    **{name: _keep_mask(fn) for name, fn in PHOTOMETRIC.items()},
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
