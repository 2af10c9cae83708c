"""YOLO segmentation (Ultralytics layout): ``OUT/data.yaml`` (``names``), ``OUT/images/<split>/``
and ``OUT/labels/<split>/<name>.txt``, one ``class x1 y1 ...`` polygon a line in fractions of
the image size (holes joined by a cut, as Ultralytics' own converters do)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from .base import DatasetWriter, class_regions, copy_file, write_file


def yolo_lines(mask: np.ndarray, regions) -> str:
    h, w = mask.shape
    lines = []
    for c, poly in regions:
        coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
        lines.append(f"{c} {coords}")
    return "".join(line + "\n" for line in lines)


class YOLOWriter(DatasetWriter):
    format_name = "yolo"

    def add(self, split: str, name: str, image_file: Path, mask: np.ndarray) -> None:
        copy_file(image_file, self.stage / "images" / split / f"{name}{image_file.suffix}")
        text = yolo_lines(mask, class_regions(mask, self.classes))
        write_file(self.stage / "labels" / split / f"{name}.txt", text.encode())

    def finish(self) -> None:
        names = {i: n for i, n in enumerate(self.classes.names)}
        write_file(self.stage / "data.yaml", yaml.safe_dump({"names": names}).encode())
