"""Objects from a semantic prediction, and per-pixel uncertainty.

``extract_instances`` turns a class map into objects: every connected region of one class is an
instance. Connectivity is 8 (diagonal neighbours join), so a thin diagonal structure stays one
object; use ``connectivity=4`` to split regions that touch only at corners. Touching objects of
the same class merge: this is connected components, not instance segmentation.

Example::

    found = extract_instances(pred, probs, min_area=50)
    json.dumps(instances_to_json(found, class_names))
    overlay = instance_overlay(image, found)
    heat = uncertainty_to_image(uncertainty_map(probs, "entropy"))
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from scipy import ndimage

from ..constants import IGNORE_INDEX


@dataclass
class Instance:
    """One connected region of one class.

    bbox: (x0, y0, x1, y1) in pixels with x1, y1 exclusive (width = x1 - x0), like slices.
    mask: boolean (y1 - y0, x1 - x0) crop of the region inside its bbox; ``full_mask()`` gives
        the (H, W) mask. Crops keep memory small when an image has many objects.
    confidence: mean probability of ``class_id`` over the region (None without probabilities).
    """

    id: int
    class_id: int
    area: int
    bbox: tuple[int, int, int, int]
    confidence: float | None
    mask: np.ndarray
    image_size: tuple[int, int]  # (H, W)

    def full_mask(self) -> np.ndarray:
        out = np.zeros(self.image_size, dtype=bool)
        x0, y0, x1, y1 = self.bbox
        out[y0:y1, x0:x1] = self.mask
        return out

    @property
    def centroid(self) -> tuple[float, float]:
        """(x, y) centre of mass in pixels (from the row and column counts: the coordinates of
        every pixel of a large region would be 16 bytes a pixel)."""
        rows, cols = self.mask.sum(axis=1), self.mask.sum(axis=0)
        n = int(rows.sum())
        y = float(np.dot(rows, np.arange(rows.size)) / n)
        x = float(np.dot(cols, np.arange(cols.size)) / n)
        return x + self.bbox[0], y + self.bbox[1]


def extract_instances(
    class_map: np.ndarray,
    probs: np.ndarray | None = None,
    min_area: int = 16,
    ignore_classes: Iterable[int] = (0,),
    connectivity: int = 8,
    confidence: np.ndarray | None = None,
) -> list[Instance]:
    """Connected regions of each class in ``class_map`` (H, W), as ``Instance`` objects.

    probs: optional (C, H, W) class probabilities, for each instance's mean confidence.
    min_area: regions with fewer pixels are dropped (speckle, not objects).
    ignore_classes: class ids that are not objects (background, road, sky...); IGNORE_INDEX is
        always skipped.
    confidence: optional (H, W) probability of each pixel's own class, instead of ``probs``:
        the same confidences without a (C, H, W) array (a large image served).
    Instances are ordered by class id, then in raster order of their first pixel; ids are 1..N.

    >>> m = np.zeros((6, 6), np.int64); m[1:3, 1:4] = 1; m[4:6, 4:6] = 2
    >>> [(i.class_id, i.area, i.bbox) for i in extract_instances(m, min_area=1)]
    [(1, 6, (1, 1, 4, 3)), (2, 4, (4, 4, 6, 6))]
    """
    class_map = np.asarray(class_map)
    if class_map.ndim != 2:
        raise ValueError(f"class_map must be (H, W), got {class_map.shape}")
    if probs is not None:
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[1:] != class_map.shape:
            raise ValueError(f"probs must be (C, {class_map.shape[0]}, {class_map.shape[1]})")
    if confidence is not None and np.shape(confidence) != class_map.shape:
        raise ValueError(f"confidence must be {class_map.shape}, got {np.shape(confidence)}")
    if connectivity not in (4, 8):
        raise ValueError("connectivity must be 4 or 8")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    skip = set(int(c) for c in ignore_classes) | {IGNORE_INDEX}
    found: list[Instance] = []
    for class_id in np.unique(class_map):
        class_id = int(class_id)
        if class_id in skip:
            continue
        labels, count = ndimage.label(class_map == class_id, structure=structure)
        if count == 0:
            continue
        weights = None
        if confidence is not None:
            weights = confidence
        elif probs is not None and class_id < probs.shape[0]:
            weights = probs[class_id]
        areas, conf_sums = _region_sums(labels, count, weights)
        # find_objects returns slices in label order, which is raster order of first pixels.
        for label, slices in enumerate(ndimage.find_objects(labels), start=1):
            if slices is None or areas[label] < min_area:
                continue
            ys, xs = slices
            found.append(
                Instance(
                    id=0,
                    class_id=class_id,
                    area=int(areas[label]),
                    bbox=(xs.start, ys.start, xs.stop, ys.stop),
                    confidence=None
                    if conf_sums is None
                    else float(conf_sums[label] / areas[label]),
                    mask=labels[slices] == label,
                    image_size=class_map.shape,
                )
            )
    for i, inst in enumerate(found, start=1):
        inst.id = i
    return found


def _region_sums(
    labels: np.ndarray, count: int, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels and summed ``weights`` of each label, over bands of rows: ``bincount`` copies its
    input to int64 (and the weights to float64), which for a whole large image is 16 bytes a
    pixel more."""
    rows = max(1, (1 << 20) // max(1, labels.shape[1]))
    areas = np.zeros(count + 1, np.int64)
    sums = None if weights is None else np.zeros(count + 1, np.float64)
    for r0 in range(0, labels.shape[0], rows):
        band = labels[r0 : r0 + rows].ravel()
        areas += np.bincount(band, minlength=count + 1)
        if sums is not None:
            sums += np.bincount(band, weights=weights[r0 : r0 + rows].ravel(), minlength=count + 1)
    return areas, sums


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO run-length encoding (column-major, runs start with background)."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def instances_to_json(
    instances: Sequence[Instance],
    class_names: Sequence[str] | None = None,
    include_masks: bool = False,
) -> list[dict]:
    """JSON-ready dicts: id, class_id, class_name, area, bbox [x0, y0, x1, y1] (x1/y1
    exclusive), centroid [x, y], confidence; with ``include_masks`` also ``mask_rle``, the
    full-image mask as uncompressed COCO RLE ({"size": [H, W], "counts": [...]})."""
    out = []
    for inst in instances:
        d = {
            "id": inst.id,
            "class_id": inst.class_id,
            "class_name": (
                class_names[inst.class_id]
                if class_names is not None and inst.class_id < len(class_names)
                else str(inst.class_id)
            ),
            "area": inst.area,
            "bbox": list(inst.bbox),
            "centroid": [round(v, 2) for v in inst.centroid],
            "confidence": None if inst.confidence is None else round(inst.confidence, 4),
        }
        if include_masks:
            d["mask_rle"] = _rle(inst.full_mask())
        out.append(d)
    return out


def instance_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours: hues spaced by the golden ratio, so neighbours differ."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    rgb = [colorsys.hsv_to_rgb(h, 0.85, 0.95) for h in hues]
    return np.round(np.array(rgb, dtype=np.float64).reshape(n, 3) * 255).astype(np.uint8)


def instance_overlay(
    image: np.ndarray, instances: Sequence[Instance], alpha: float = 0.45, outline: bool = True
) -> np.ndarray:
    """The image with each instance filled in its own colour (``alpha`` blend) and outlined."""
    out = np.asarray(image, dtype=np.float64).copy()
    colours = instance_colours(len(instances)).astype(np.float64)
    for inst, colour in zip(instances, colours):
        x0, y0, x1, y1 = inst.bbox
        crop = out[y0:y1, x0:x1]
        crop[inst.mask] = (1 - alpha) * crop[inst.mask] + alpha * colour
        if outline:
            # Inner boundary: region pixels with a 4-neighbour outside the region.
            edge = inst.mask & ~ndimage.binary_erosion(inst.mask, border_value=0)
            crop[edge] = colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def uncertainty_map(probs: np.ndarray, kind: str = "entropy") -> np.ndarray:
    """(H, W) float in [0, 1] from (C, H, W) probabilities; higher means less certain.

    entropy: Shannon entropy divided by log(C) (1 = uniform over all classes).
    margin: 1 - (top-1 probability - top-2 probability) (1 = a tie between two classes).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (C, H, W), got {probs.shape}")
    c = probs.shape[0]
    if kind == "entropy":
        if c < 2:
            return np.zeros(probs.shape[1:])
        p = np.clip(probs, 1e-12, 1.0)
        return np.clip(-(p * np.log(p)).sum(0) / np.log(c), 0.0, 1.0)
    if kind == "margin":
        if c < 2:
            return np.zeros(probs.shape[1:])
        top2 = np.partition(probs, c - 2, axis=0)[c - 2 :]
        return np.clip(1.0 - (top2[1] - top2[0]), 0.0, 1.0)
    raise ValueError(f"unknown uncertainty kind {kind!r}; use 'entropy' or 'margin'")


def uncertainty_to_image(
    uncertainty: np.ndarray, cmap: str = "magma", vmin: float = 0.0, vmax: float = 1.0
) -> np.ndarray:
    """Colour an (H, W) uncertainty map: uint8 (H, W, 3) through a matplotlib colour map."""
    u = (np.asarray(uncertainty, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12)
    rgba = colormaps[cmap](np.clip(u, 0.0, 1.0))
    return np.round(rgba[..., :3] * 255).astype(np.uint8)
