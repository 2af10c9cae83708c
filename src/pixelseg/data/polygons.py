"""Vector labels (polygons, rectangles, circles) painted into a label map: the one rasteriser
behind the LabelMe and YOLO readers.

Shapes are painted in order, so a later shape covers an earlier one (how LabelMe and
labelme2voc resolve overlaps). Pixels no shape covers keep the ``fill`` value: IGNORE_INDEX,
or 0 when the dataset's first class is a background class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import IGNORE_INDEX

BACKGROUND_NAMES = ("_background_", "background")
EDGE_TOLERANCE = 1.0  # pixels a vertex may lie outside the image (clicks on the border)


@dataclass(frozen=True)
class Shape:
    """One labelled region in pixel coordinates (x right, y down)."""

    class_id: int
    kind: str  # polygon | rectangle | circle
    points: tuple[tuple[float, float], ...]


def uncovered_value(names: list[str]) -> int:
    """What pixels outside every shape are: the background class when the first class is one,
    otherwise ignored."""
    return 0 if names and names[0] in BACKGROUND_NAMES else IGNORE_INDEX


def outside_image(points, height: int, width: int) -> tuple[float, float] | None:
    """The first vertex more than EDGE_TOLERANCE pixels outside the image, if any."""
    for x, y in points:
        if not (
            -EDGE_TOLERANCE <= x <= width + EDGE_TOLERANCE
            and -EDGE_TOLERANCE <= y <= height + EDGE_TOLERANCE
        ):
            return (x, y)
    return None


def polygon_pixels(points, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels whose centre lies inside the polygon (even-odd rule).

    Coordinates are pixel corners (pixel (r, c) spans [c, c+1) x [r, r+1)), as LabelMe and
    YOLO use them, so a polygon around pixels 4..11 covers exactly those 8. Each row's
    crossings with the edges flip inside/outside from the first pixel centre at or after them.
    """
    pts = np.asarray(points, dtype=np.float64)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    centres = np.arange(height)[:, None] + 0.5  # (H, 1) against every edge (1, E)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    crosses = (lo <= centres) & (centres < hi)  # half-open: a shared vertex counts once
    rows, edges = np.nonzero(crosses)
    t = (centres[rows, 0] - y0[edges]) / (y1[edges] - y0[edges])
    x = x0[edges] + t * (x1[edges] - x0[edges])
    first = np.clip(np.ceil(x - 0.5), 0, width).astype(np.int64)
    flips = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(flips, (rows, first), 1)
    return (np.cumsum(flips, axis=1)[:, :width] % 2).astype(bool)


def shape_pixels(shape: Shape, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels whose centre the shape covers."""
    if shape.kind == "polygon":
        return polygon_pixels(shape.points, height, width)
    ys = np.arange(height)[:, None] + 0.5
    xs = np.arange(width)[None, :] + 0.5
    (ax, ay), (bx, by) = shape.points[0], shape.points[1]
    if shape.kind == "rectangle":
        return (min(ax, bx) <= xs) & (xs < max(ax, bx)) & (min(ay, by) <= ys) & (ys < max(ay, by))
    # circle: centre, then a point on the rim
    return (xs - ax) ** 2 + (ys - ay) ** 2 <= (bx - ax) ** 2 + (by - ay) ** 2


def rasterize(shapes: list[Shape], height: int, width: int, fill: int) -> np.ndarray:
    """(H, W) int64 label map: ``shapes`` painted in order (later over earlier) on ``fill``."""
    out = np.full((height, width), fill, dtype=np.int64)
    for shape in shapes:
        out[shape_pixels(shape, height, width)] = shape.class_id
    return out


__all__ = [
    "BACKGROUND_NAMES",
    "Shape",
    "outside_image",
    "polygon_pixels",
    "rasterize",
    "shape_pixels",
    "uncovered_value",
]
