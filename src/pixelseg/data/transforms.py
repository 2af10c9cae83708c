"""Joint image/mask transforms and the one place where images are normalised.

Geometry moves image and mask together with one affine map: bilinear for the image,
nearest for the mask, exposed areas set to IGNORE_INDEX so the loss never learns from padding.
Photometric corruptions (``AugmentParams.corruptions``, from ``pixelseg.data.corruptions``)
come last and change only the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from PIL import Image

from ..constants import DEFAULT_MEAN, DEFAULT_STD, IGNORE_INDEX
from .corruptions import PHOTOMETRIC


@dataclass
class AugmentParams:
    """What the transforms draw from. The ``augment`` section of a configuration
    (``config.AugmentConfig``) declares each of these under the same name, plus where the
    augmentation runs; ``from_config`` reads them by name, so a new parameter is declared
    here and there, never copied by hand."""

    rotation: float = 10.0
    scale: tuple[float, float] = (0.8, 1.25)
    hflip: float = 0.5
    vflip: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    corruptions: tuple[str, ...] = ()  # photometric corruption names; empty = none
    corruption_p: float = 0.5  # probability that a sample is corrupted
    corruption_max_severity: int = 3  # severity drawn uniformly from 1..this
    corruption_blend: bool = False  # blend each corrupted sample with its clean image (AugMix)
    corruption_p_final: float | None = None  # p at the end of training; None = constant p

    @classmethod
    def from_config(cls, section) -> AugmentParams:
        """The parameters of an ``augment`` configuration section (its lists become tuples)."""
        values = {f.name: getattr(section, f.name) for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def corruption_probability(p: AugmentParams, progress: float) -> float:
    """The corruption probability at ``progress`` (0 = first epoch, 1 = last): ``corruption_p``,
    moving linearly to ``corruption_p_final`` when that is set.

    >>> corruption_probability(AugmentParams(corruption_p=0.6, corruption_p_final=0.2), 0.5)
    0.4
    """
    if p.corruption_p_final is None:
        return p.corruption_p
    t = min(max(float(progress), 0.0), 1.0)
    return round(p.corruption_p + (p.corruption_p_final - p.corruption_p) * t, 12)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 image resized to ``size`` (H, W), bilinear."""
    h, w = size
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Integer labels (a mask, a prediction) resized to ``size`` (H, W), nearest by pixel
    centres as PIL does, computed in numpy so any integer dtype survives."""
    h, w = size
    rows = np.minimum(
        ((np.arange(h) + 0.5) * labels.shape[0] / h).astype(np.int64), labels.shape[0] - 1
    )
    cols = np.minimum(
        ((np.arange(w) + 0.5) * labels.shape[1] / w).astype(np.int64), labels.shape[1] - 1
    )
    return labels[rows[:, None], cols[None, :]]


def resize_pair(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    if image.shape[:2] == tuple(size):
        return image, mask
    return resize_image(image, size), resize_labels(mask, size).astype(np.int64)


def affine_pair(
    image: np.ndarray,
    mask: np.ndarray | None,
    angle_deg: float,
    scale: float,
    hflip: bool = False,
    vflip: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotate/scale/flip about the centre, keeping the size. Exposed mask pixels -> ignore,
    exposed image pixels -> black (the same pixels: PIL fills exactly the output pixels whose
    centre maps outside the input, for both filters). The one CPU warp: training augmentation
    and the rotate/scale corruptions of robustness evaluation both use it (``mask`` None:
    the image only)."""
    if angle_deg == 0 and scale == 1.0:
        # Flips only: the warp would copy each pixel exactly (centres map onto centres), so
        # slicing gives the same arrays some 30x faster (the demo's augmentation).
        ys = slice(None, None, -1 if vflip else 1)
        xs = slice(None, None, -1 if hflip else 1)
        flipped = np.ascontiguousarray(image[ys, xs])
        if mask is None:
            return flipped, None
        return flipped, np.ascontiguousarray(mask[ys, xs]).astype(np.int64)
    coeffs = inverse_affine(image.shape[:2], angle_deg, scale, hflip, vflip)
    return warp_pair(image, mask, coeffs)


def inverse_affine(
    size: tuple[int, int], angle_deg: float, scale: float, hflip: bool, vflip: bool
) -> tuple[float, ...]:
    """PIL's affine coefficients (the inverse map, output -> input) of a rotation, scale and
    flips about the centre of an image of ``size`` (H, W)."""
    h, w = size
    cx, cy = w / 2, h / 2  # PIL samples at pixel centres (x + 0.5): the centre is w/2
    a = math.radians(angle_deg)
    # Undo scale, rotation, then flips.
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    fx, fy = (-1 if hflip else 1), (-1 if vflip else 1)
    m = np.array([[fx * cos, fx * sin], [-fy * sin, fy * cos]])
    offset = np.array([cx, cy]) - m @ np.array([cx, cy])
    return (m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1])


def warp_pair(
    image: np.ndarray, mask: np.ndarray | None, coeffs: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp an image (bilinear, black outside) and its mask (nearest, ignore outside) by
    PIL's affine ``coeffs`` (``inverse_affine``), keeping the size."""
    h, w = image.shape[:2]
    img = Image.fromarray(image).transform(
        (w, h), Image.AFFINE, coeffs, Image.BILINEAR, fillcolor=(0, 0, 0)
    )
    if mask is None:
        return np.asarray(img), None
    msk = Image.fromarray(mask.astype(np.uint8)).transform(
        (w, h), Image.AFFINE, coeffs, Image.NEAREST, fillcolor=IGNORE_INDEX
    )
    return np.asarray(img), np.asarray(msk).astype(np.int64)


def random_crop_pair(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Crop to ``size``; pad first (image 0, mask ignore) where the image is smaller."""
    ch, cw = size
    h, w = mask.shape
    if h < ch or w < cw:
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
        h, w = mask.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return image[y : y + ch, x : x + cw], mask[y : y + ch, x : x + cw]


def colour_jitter(image: np.ndarray, p: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    img = image.astype(np.float32)
    if p.brightness:
        img *= rng.uniform(1 - p.brightness, 1 + p.brightness)
    if p.contrast:
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - p.contrast, 1 + p.contrast) + mean
    if p.saturation:
        gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        s = rng.uniform(1 - p.saturation, 1 + p.saturation)
        img = (img - gray[:, :, None]) * s + gray[:, :, None]
    return img.clip(0, 255).astype(np.uint8)


def draw_corruption(
    p: AugmentParams, rng: np.random.Generator, progress: float = 0.0
) -> tuple[str, int] | None:
    """The (name, severity) a sample gets, or None: one uniform draw against
    ``corruption_probability(p, progress)`` decides whether, then the kind and the severity are
    drawn uniformly. Nothing is drawn when no corruption is listed."""
    if not p.corruptions:
        return None
    if rng.random() >= corruption_probability(p, progress):
        return None
    name = p.corruptions[int(rng.integers(len(p.corruptions)))]
    return name, int(rng.integers(1, p.corruption_max_severity + 1))


def blend_corruption(image: np.ndarray, corrupted: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * image + weight * corrupted``, rounded to uint8: the AugMix-style mix
    of a clean image with its corrupted copy (``augment.corruption_blend``)."""
    mixed = (1.0 - weight) * image.astype(np.float32) + weight * corrupted.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def random_corruption(
    image: np.ndarray, p: AugmentParams, rng: np.random.Generator, progress: float = 0.0
) -> np.ndarray:
    """Corrupt ``image`` with the probability ``draw_corruption`` gives at ``progress``; with
    ``p.corruption_blend`` the result is blended back with the clean image by a weight drawn
    uniformly from [0, 1), right after the kind and severity."""
    drawn = draw_corruption(p, rng, progress)
    if drawn is None:
        return image
    name, severity = drawn
    weight = rng.random() if p.corruption_blend else None
    corrupted = PHOTOMETRIC[name](np.ascontiguousarray(image), severity, rng)
    return corrupted if weight is None else blend_corruption(image, corrupted, weight)


class TrainTransform:
    """resize -> rotate/scale/flip -> random crop -> colour jitter -> photometric corruption
    (each optional). All draws come from the per-sample ``rng`` (see ``data.loader``);
    ``progress`` (0 at the first epoch, 1 at the last) only moves the corruption probability."""

    def __init__(
        self,
        params: AugmentParams | None,
        crop_size: tuple[int, int] | None = None,
        resize: tuple[int, int] | None = None,
    ) -> None:
        self.p = params
        self.crop_size = crop_size
        self.resize = resize

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, progress: float = 0.0
    ):
        if self.resize:
            image, mask = resize_pair(image, mask, self.resize)
        p = self.p
        if p is not None:
            angle = rng.uniform(-p.rotation, p.rotation) if p.rotation else 0.0
            # Log-uniform scale, so zooming in and out are equally likely.
            scale = math.exp(rng.uniform(math.log(p.scale[0]), math.log(p.scale[1])))
            hflip, vflip = rng.random() < p.hflip, rng.random() < p.vflip
            if angle or scale != 1.0 or hflip or vflip:
                image, mask = affine_pair(image, mask, angle, scale, hflip, vflip)
        if self.crop_size:
            image, mask = random_crop_pair(image, mask, self.crop_size, rng)
        if p is not None:
            image = colour_jitter(image, p, rng)
            image = random_corruption(image, p, rng, progress)
        return image, mask


class EvalTransform:
    """No augmentation: only the optional resize (the mask is resized with nearest)."""

    def __init__(self, resize: tuple[int, int] | None = None) -> None:
        self.resize = resize

    def __call__(self, image, mask, rng=None, progress: float = 0.0):
        if self.resize:
            image, mask = resize_pair(image, mask, self.resize)
        return image, mask


class Normalizer:
    """uint8 (B, 3, H, W) -> float32 normalised. Recorded in checkpoints so predict matches."""

    def __init__(self, mean=DEFAULT_MEAN, std=DEFAULT_STD) -> None:
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1) * 255
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1) * 255
        return (images.float() - mean) / std

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}
