"""Class maps drawn in their class colours, alone or blended over the image: what predict,
serve, the report and the training tracker show a person."""

from __future__ import annotations

import numpy as np


def colourise(class_map: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(colours)] = np.array(colours, dtype=np.uint8)
    return lut[class_map.clip(0, 255)]


def overlay(image: np.ndarray, class_map: np.ndarray, colours, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over the image (class 0 included, so background is tinted too)."""
    blended = image.astype(np.float32) * (1 - alpha) + colourise(class_map, colours) * alpha
    return blended.clip(0, 255).astype(np.uint8)
