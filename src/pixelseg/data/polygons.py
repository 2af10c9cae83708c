"""Vector labels and label maps, both ways: shapes (polygons, rectangles, circles) painted into
a label map (the LabelMe and YOLO readers), and a class's pixels traced back into polygons
(the writers and pre-labels). A traced polygon paints back exactly the pixels it came from.

Shapes are painted in order, so a later shape covers an earlier one (how LabelMe and
labelme2voc resolve overlaps). Pixels no shape covers keep the ``fill`` value: IGNORE_INDEX,
or 0 when the dataset's first class is a background class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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


# Boundary edges of a pixel, as (dx0, dy0, dx1, dy1) from its top-left corner, walked with the
# pixel on the right-hand side (y down): top eastward, right southward, bottom west, left north.
_SIDES = ((0, 0, 1, 0), (1, 0, 1, 1), (1, 1, 0, 1), (0, 1, 0, 0))
_NEIGHBOUR = ((-1, 0), (0, 1), (1, 0), (0, -1))  # (dr, dc) of the pixel across each side


def _boundary_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops of pixel-corner vertices around the True pixels (4-connected regions; an
    outer boundary runs clockwise on screen, a hole's the other way)."""
    h, w = mask.shape
    padded = np.pad(mask, 1)
    starts, ends, dirs = [], [], []
    for d, ((dx0, dy0, dx1, dy1), (dr, dc)) in enumerate(zip(_SIDES, _NEIGHBOUR)):
        r, c = np.nonzero(mask & ~padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w])
        starts.append((r + dy0) * (w + 1) + c + dx0)
        ends.append((r + dy1) * (w + 1) + c + dx1)
        dirs.append(np.full(r.size, d))
    start, end, direction = (np.concatenate(a) for a in (starts, ends, dirs))
    outgoing: dict[int, list[int]] = {}
    for i, v in enumerate(start.tolist()):
        outgoing.setdefault(v, []).append(i)
    used = np.zeros(start.size, dtype=bool)
    end_l, dir_l = end.tolist(), direction.tolist()
    loops = []
    for first in range(start.size):
        if used[first]:
            continue
        vertices, edge = [int(start[first])], first
        while True:
            used[edge] = True
            v, d = end_l[edge], dir_l[edge]
            # Where two regions touch at a corner, turn right: each 4-connected region its loop.
            rank = {(d + 1) % 4: 0, d: 1, (d + 3) % 4: 2}
            edge = min(outgoing[v], key=lambda e: rank.get(dir_l[e], 3))
            if edge == first or used[edge]:
                break
            vertices.append(v)
        vv = np.array(vertices)
        loops.append(np.stack([vv % (w + 1), vv // (w + 1)], axis=1))
    return loops


def _corners_only(loop: np.ndarray) -> np.ndarray:
    """Drop the vertices where the boundary goes straight on."""
    prev, nxt = np.roll(loop, 1, axis=0), np.roll(loop, -1, axis=0)
    turn = (loop - prev)[:, 0] * (nxt - loop)[:, 1] - (loop - prev)[:, 1] * (nxt - loop)[:, 0]
    return loop[turn != 0]


def signed_area(loop) -> float:
    """Shoelace area, positive for an outer ring as traced here (clockwise on screen); a
    traced polygon's area is its pixel count (the cut adds nothing, holes subtract)."""
    loop = np.asarray(loop)
    x, y = loop[:, 0].astype(np.float64), loop[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def mask_to_polygons(mask: np.ndarray, min_area: int = 0) -> list[list[tuple[int, int]]]:
    """Polygons (pixel-corner vertices) that paint back exactly ``mask``'s True pixels, one per
    4-connected region of at least ``min_area`` pixels.

    A region with holes is one polygon: each hole's ring is joined to the outer ring by a cut
    walked there and back, which the even-odd rule (``polygon_pixels``, PIL, LabelMe) leaves
    filled, so formats without holes (LabelMe, YOLO, COCO polygons) keep them. One-pixel-wide
    structures survive: the boundary follows pixel edges, not pixel centres.
    """
    mask = np.asarray(mask, dtype=bool)
    regions, count = ndimage.label(mask)  # 4-connected, as the loops are
    if count == 0:
        return []
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    outer: dict[int, np.ndarray] = {}
    holes: dict[int, list[np.ndarray]] = {}
    for loop in _boundary_loops(mask):
        # The pixel on the right of the loop's first edge is inside the region it bounds.
        (x0, y0), (x1, y1) = loop[0], loop[1]
        dx, dy = np.sign(x1 - x0), np.sign(y1 - y0)
        px, py = min(x0, x1) - (dy > 0), min(y0, y1) - (dx < 0)
        region = int(regions[py, px])
        corners = _corners_only(loop)
        if signed_area(loop) > 0:
            outer[region] = corners
        else:
            holes.setdefault(region, []).append(corners)
    polygons = []
    for region, ring in sorted(outer.items()):
        if sizes[region] < max(min_area, 1):
            continue
        points = ring
        for hole in holes.get(region, []):
            # Join at the outer vertex nearest the hole's first vertex, there and back.
            i = int(np.argmin(((points - hole[0]) ** 2).sum(1)))
            points = np.concatenate([points[: i + 1], hole, hole[:1], points[i:]])
        polygons.append([(int(x), int(y)) for x, y in points])
    return polygons


__all__ = [
    "BACKGROUND_NAMES",
    "Shape",
    "mask_to_polygons",
    "outside_image",
    "polygon_pixels",
    "rasterize",
    "shape_pixels",
    "signed_area",
    "uncovered_value",
]
