"""LabelMe: ``OUT/<split>/<name><ext>`` with ``<name>.json`` beside it (one polygon shape per
region, holes joined by a cut) and ``classes.txt`` in id order, so ids survive a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import DatasetWriter, class_regions, copy_file, write_file

LABELME_VERSION = "5.5.0"


def labelme_document(mask: np.ndarray, names: list[str], regions, image_path: str) -> dict:
    """A LabelMe file's contents for one image (``regions``: (class id, polygon) pairs)."""
    h, w = mask.shape
    shapes = [
        {
            "label": names[c],
            "points": [[x, y] for x, y in poly],
            "group_id": None,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
            "mask": None,
        }
        for c, poly in regions
    ]
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": int(h),
        "imageWidth": int(w),
    }


class LabelMeWriter(DatasetWriter):
    format_name = "labelme"

    def add(self, split: str, name: str, image_file: Path, mask: np.ndarray) -> None:
        image = self.stage / split / f"{name}{image_file.suffix}"
        copy_file(image_file, image)
        doc = labelme_document(
            mask, self.classes.names, class_regions(mask, self.classes), image.name
        )
        write_file(image.with_suffix(".json"), json.dumps(doc).encode())

    def finish(self) -> None:
        write_file(self.stage / "classes.txt", ("\n".join(self.classes.names) + "\n").encode())
