"""COCO instances: ``OUT/annotations/instances_<split>.json`` and ``OUT/<split>/`` images. Each
region is an annotation with one polygon (holes joined by a cut); category ``k + 1`` is class
``k``. Ignored pixels (255) become crowd regions (``iscrowd: 1``), which the reader ignores
again. COCO has no unlabelled class of its own: reading it back adds ``background`` as class
0, so class ``k`` comes back as ``k + 1``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...constants import IGNORE_INDEX
from ..polygons import mask_to_polygons, signed_area
from .base import DatasetWriter, class_regions, copy_file, write_file


def coco_annotation(ann_id: int, image_id: int, class_id: int, poly, crowd: bool = False) -> dict:
    """One region as a COCO annotation: category ``class_id + 1``, one polygon, its pixel
    count as the area."""
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": class_id + 1,
        "segmentation": [[float(v) for xy in poly for v in xy]],
        "area": signed_area(poly),
        "bbox": [
            float(min(xs)),
            float(min(ys)),
            float(max(xs) - min(xs)),
            float(max(ys) - min(ys)),
        ],
        "iscrowd": int(crowd),
    }


def coco_categories(names: list[str]) -> list[dict]:
    return [{"id": i + 1, "name": n} for i, n in enumerate(names)]


class COCOWriter(DatasetWriter):
    format_name = "coco"

    def __init__(self, out, classes) -> None:
        super().__init__(out, classes)
        self.splits: dict[str, dict] = {}
        self.annotations = 0

    def add(self, split: str, name: str, image_file: Path, mask: np.ndarray) -> None:
        doc = self.splits.setdefault(split, {"images": [], "annotations": []})
        file_name = f"{name}{image_file.suffix}"
        copy_file(image_file, self.stage / split / file_name)
        image_id = len(doc["images"]) + 1
        h, w = mask.shape
        doc["images"].append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        regions = [(c, poly, False) for c, poly in class_regions(mask, self.classes)]
        regions += [(0, poly, True) for poly in mask_to_polygons(mask == IGNORE_INDEX)]
        for c, poly, crowd in regions:
            self.annotations += 1
            doc["annotations"].append(coco_annotation(self.annotations, image_id, c, poly, crowd))

    def finish(self) -> None:
        categories = coco_categories(self.classes.names)
        for split, doc in self.splits.items():
            data = {**doc, "categories": categories}
            write_file(
                self.stage / "annotations" / f"instances_{split}.json", json.dumps(data).encode()
            )
