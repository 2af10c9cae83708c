"""The work of one ``pixelseg serve`` request, bounded by what it costs.

A large upload is cheap to send (a flat 5000 x 5000 PNG is a few tens of kB) and dear to
answer, so the server never makes full-size copies per class:

- the model sees the image at its own training size (``data.resize``, recorded in the
  checkpoint) or, without one, scaled down to at most ``max_model_pixels``
  (``model_input``); an image that already fits goes through unchanged, exactly as
  ``pixelseg predict`` would;
- the probabilities stay at the model's size; the class map, the confidences, the
  uncertainty and the overlay are made at the image's size a band of rows at a time
  (``describe``), in float32, and each output is encoded and dropped before the next;
- ``estimate_bytes`` says what a request will hold at its peak, from the image header and the
  outputs asked for, so that the server can refuse (413) or queue what does not fit.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...analysis.instances import extract_instances, instances_to_json, uncertainty_to_image
from ...data.imageio import encode_png
from ...data.overlay import overlay
from ...data.sample import ClassTable

# Probabilities per band of rows (4 MB as float32): the upsampled band and its temporaries.
BAND_VALUES = 1 << 20


@dataclass(frozen=True)
class Asked:
    """The outputs one request asks for."""

    mask: bool = False
    overlay: bool = False
    uncertainty: bool = False
    objects: bool = True
    min_area: int = 16


class DeadlineExceeded(Exception):
    pass


class Deadline:
    """A request's compute deadline; the work checks it between steps and bands."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise DeadlineExceeded


def model_size(
    height: int, width: int, resize: tuple[int, int] | None, max_pixels: int
) -> tuple[int, int]:
    """The (H, W) the model runs at for an image of ``height`` x ``width``."""
    if resize:
        return int(resize[0]), int(resize[1])
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def estimate_bytes(
    height: int, width: int, num_classes: int, model_hw: tuple[int, int], asked: Asked
) -> int:
    """What one request holds at its peak, by the numbers of ``describe`` (and of decoding).

    Per image pixel: decoding 14 bytes (Pillow's image, its RGB copy, the array); then the
    image (3) and the class map (1) throughout, the confidences (4) and the labels of the
    objects (5), an RGB output and Pillow's copy of it while it is encoded (7), and the
    answer: each PNG at most its raw size, base64 and the JSON copy. Per model pixel: the
    input and the probabilities (float32), twice over while they are made.
    """
    px = height * width
    held = 4 + (4 if asked.objects else 0)
    step = max(5 if asked.objects else 0, 7 if (asked.overlay or asked.uncertainty) else 0)
    raw_outputs = (1 if asked.mask else 0) + (3 if asked.overlay else 0)
    raw_outputs += 3 if asked.uncertainty else 0
    answer = raw_outputs * 8 / 3  # base64 (4/3), then the JSON body beside it (x2)
    per_pixel = max(14.0, held + step + answer)
    model_px = model_hw[0] * model_hw[1]
    return int(px * per_pixel + model_px * (3 + num_classes) * 4 * 2 + 4 * BAND_VALUES * 4)


def model_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The image as the model takes it: unchanged at its own size; else a float32 (h, w, 3)
    bilinear resize of it, the one ``F.interpolate`` makes of the whole (normalised) image
    (``align_corners=False``, no antialiasing), from only the rows and columns it reads."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    y0, y1, ly = _axis(h, size[0])
    x0, x1, lx = _axis(w, size[1])
    ly, lx = ly[:, None, None], lx[None, :, None]

    def columns(rows: np.ndarray) -> np.ndarray:
        return rows[:, x0].astype(np.float32) * (1 - lx) + rows[:, x1].astype(np.float32) * lx

    return columns(image[y0]) * (1 - ly) + columns(image[y1]) * ly


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source indices and weights along one axis, as PyTorch computes them."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


class Upsampled:
    """(C, h, w) probabilities at the model's size, read as bands of rows at the image's size
    (H, W): bilinear, as ``Predictor`` resizes them back, without the (C, H, W) whole."""

    def __init__(self, probs: np.ndarray, size: tuple[int, int]) -> None:
        self.probs = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))
        self.size = size
        c = self.probs.shape[0]
        self.rows = max(1, BAND_VALUES // max(1, c * size[1]))
        if tuple(self.probs.shape[1:]) != size and c * size[0] * size[1] <= BAND_VALUES:
            # Small enough to resize whole: exactly what Predictor returns.
            self.probs = F.interpolate(
                self.probs[None], size=size, mode="bilinear", align_corners=False
            )[0]
        self.same = tuple(self.probs.shape[1:]) == size
        if not self.same:
            self.y = _axis(self.probs.shape[1], size[0])
            self.x = tuple(torch.from_numpy(a) for a in _axis(self.probs.shape[2], size[1]))

    def bands(self):
        """(r0, r1, (C, r1 - r0, W) float32 probabilities) down the image."""
        for r0 in range(0, self.size[0], self.rows):
            r1 = min(self.size[0], r0 + self.rows)
            yield r0, r1, self._band(r0, r1)

    def _band(self, r0: int, r1: int) -> torch.Tensor:
        if self.same:
            return self.probs[:, r0:r1]
        y0, y1, ly = (torch.from_numpy(a[r0:r1]) for a in self.y)
        x0, x1, lx = self.x

        def columns(rows: torch.Tensor) -> torch.Tensor:  # (C, n, w) -> (C, n, W)
            return rows[:, :, x0] * (1 - lx) + rows[:, :, x1] * lx

        ly = ly[:, None]
        return columns(self.probs[:, y0]) * (1 - ly) + columns(self.probs[:, y1]) * ly


def describe(
    image: np.ndarray,
    probs: np.ndarray,
    classes: ClassTable,
    asked: Asked,
    deadline: Deadline,
) -> dict:
    """What ``POST /predict`` answers for one image, from its probabilities at the model's size:
    sizes, class counts and shares, and on request the objects and the PNGs (base64)."""
    h, w = image.shape[:2]
    c = probs.shape[0]
    up = Upsampled(probs, (h, w))
    class_map = np.empty((h, w), np.uint8)
    confidence = np.empty((h, w), np.float32) if asked.objects else None
    heat = np.empty((h, w, 3), np.uint8) if asked.uncertainty else None
    for r0, r1, band in up.bands():
        top, ids = band.max(0)  # ties: the first class, as argmax
        class_map[r0:r1] = ids.numpy()
        if confidence is not None:
            confidence[r0:r1] = top.numpy()
        if heat is not None:
            heat[r0:r1] = uncertainty_to_image(_entropy(band, c).numpy())
        deadline.check()
    del up, band
    out: dict = {"width": w, "height": h}
    counts = np.bincount(class_map.ravel(), minlength=classes.num_classes)
    out["class_pixels"] = {classes.names[k]: int(n) for k, n in enumerate(counts) if n}
    out["class_share"] = {
        classes.names[k]: round(int(n) / (h * w), 6) for k, n in enumerate(counts) if n
    }
    if heat is not None:
        out["uncertainty_png"] = _b64(encode_png(heat))
        del heat
        deadline.check()
    if confidence is not None:
        found = extract_instances(class_map, min_area=asked.min_area, confidence=confidence)
        del confidence
        out["objects"] = instances_to_json(found, classes.names)
        del found
        deadline.check()
    if asked.mask:
        out["mask_png"] = _b64(encode_png(class_map, classes.colours))
        deadline.check()
    if asked.overlay:
        blended = np.empty_like(image)
        rows = max(1, (1 << 20) // max(1, w))
        for r0 in range(0, h, rows):
            blended[r0 : r0 + rows] = overlay(
                image[r0 : r0 + rows], class_map[r0 : r0 + rows], classes.colours
            )
        out["overlay_png"] = _b64(encode_png(blended))
    return out


def _entropy(probs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, n, W) -> (n, W) entropy / log(C) in [0, 1], as ``uncertainty_map``, in float32."""
    if num_classes < 2:
        return torch.zeros(probs.shape[1:])
    p = probs.clamp(1e-12, 1.0)
    return (-(p * p.log()).sum(0) / math.log(num_classes)).clamp(0.0, 1.0)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
