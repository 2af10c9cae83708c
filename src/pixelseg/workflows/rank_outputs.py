"""The files ``pixelseg rank`` writes: ``ranking.csv``, the gallery page (``index.html``) and its
pictures, and the pre-labels (the model's masks as files an annotation tool opens). Kept apart
from the ranking itself (``rank.py``), which decides what goes in them.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path

import numpy as np

from ..data.imageio import encode_png
from ..data.sample import ClassTable
from ..data.transforms import resize_image, resize_labels
from ..data.writers.base import class_regions, write_file
from ..data.writers.coco import coco_annotation, coco_categories
from ..data.writers.labelme import labelme_document
from ..data.writers.yolo import yolo_lines
from ..errors import PixelsegError

PRELABEL_FORMATS = ("labelme", "yolo", "coco", "mask")
YOLO_SPLIT = "train"  # YOLO pre-labels: labels/train/<stem>.txt, listed in train.txt
THUMB = 320  # longest side of a gallery picture


def thumbnail(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(1.0, THUMB / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if image.ndim == 2:
        return resize_labels(image, size)
    return resize_image(image, size)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_file(path, buf.getvalue().encode())


def gallery_page(title: str, intro: str, columns: list[str], cards: list[dict]) -> str:
    """A self-contained page of cards: rank, name, numbers, and one picture per column."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;background:#fafafa}"
        ".card{display:inline-block;vertical-align:top;margin:0 1em 1.5em 0;padding:.6em;"
        "background:#fff;border:1px solid #ddd;border-radius:6px}"
        ".card img{max-width:320px;image-rendering:pixelated;margin-right:.3em}"
        ".num{color:#555;font-size:.9em}figure{display:inline-block;margin:0 .3em 0 0}"
        "figcaption{font-size:.8em;color:#777}</style>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    for card in cards:
        figures = "".join(
            f"<figure><img src='{html.escape(card['pictures'][c])}' alt='{html.escape(c)}'>"
            f"<figcaption>{html.escape(c)}</figcaption></figure>"
            for c in columns
        )
        numbers = ", ".join(f"{k} {v:.3f}" for k, v in card["numbers"].items())
        parts.append(
            f"<div class='card'><b>#{card['rank']}</b> {html.escape(card['name'])}"
            f"<div class='num'>{html.escape(numbers)}</div>{figures}</div>"
        )
    return "\n".join(parts) + "\n"


def write_pictures(folder: Path, name: str, pictures: dict[str, np.ndarray]) -> dict[str, str]:
    links = {}
    for what, array in pictures.items():
        rel = f"gallery/{name}_{what.replace(' ', '_')}.png"
        write_file(folder / rel, encode_png(thumbnail(array)))
        links[what] = rel
    return links


class PreLabels:
    """The model's masks of the top K, as files an annotation tool opens."""

    def __init__(self, folder: Path, fmt: str, classes: ClassTable, min_area: int) -> None:
        if fmt not in PRELABEL_FORMATS:
            raise PixelsegError(
                f"--prelabel-format {fmt}: choose from {', '.join(PRELABEL_FORMATS)}"
            )
        self.folder, self.fmt, self.classes, self.min_area = folder, fmt, classes, min_area
        self.coco: dict = {"images": [], "annotations": []}
        self._coco_names: set[str] = set()
        self._yolo_images: list[str] = []

    def add(self, name: str, image_path: str, class_map: np.ndarray) -> None:
        regions = class_regions(class_map, self.classes, self.min_area)
        if self.fmt == "labelme":
            # LabelMe opens the image through imagePath, relative to the JSON file.
            rel = os.path.relpath(Path(image_path).resolve(), self._final_folder())
            doc = labelme_document(class_map, self.classes.names, regions, rel)
            write_file(self.folder / f"{name}.json", json.dumps(doc, indent=1).encode())
        elif self.fmt == "yolo":
            # Ultralytics' layout with one split, as CVAT exports and imports it: the image
            # list names each image file, which CVAT matches to the task's images.
            lines = yolo_lines(class_map, regions).encode()
            write_file(self.folder / "labels" / YOLO_SPLIT / f"{name}.txt", lines)
            self._yolo_images.append(f"images/{YOLO_SPLIT}/{name}{Path(image_path).suffix}")
        elif self.fmt == "mask":
            write_file(self.folder / f"{name}.png", encode_png(class_map, self.classes.colours))
        else:
            # CVAT and Label Studio match annotations to the images uploaded to a task by file
            # name (a path out of the folder, "../x.png", is refused by CVAT's importer).
            image_id = len(self.coco["images"]) + 1
            h, w = class_map.shape
            file_name = Path(image_path).name
            if file_name in self._coco_names:  # two folders with the same file name
                file_name = f"{name}{Path(image_path).suffix}"
            self._coco_names.add(file_name)
            self.coco["images"].append(
                {"id": image_id, "file_name": file_name, "height": h, "width": w}
            )
            for c, poly in regions:
                ann_id = len(self.coco["annotations"]) + 1
                self.coco["annotations"].append(coco_annotation(ann_id, image_id, c, poly))

    def _final_folder(self) -> Path:
        # Image paths are written relative to where the pre-labels will be, after the rename.
        staging = self.folder.parent
        return staging.with_name(staging.name.removesuffix(".partial")).resolve() / "prelabels"

    def finish(self) -> None:
        names = self.classes.names
        if self.fmt == "labelme":
            write_file(self.folder / "classes.txt", ("\n".join(names) + "\n").encode())
        elif self.fmt == "yolo":
            listed = "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
            split = f"path: .\n{YOLO_SPLIT}: {YOLO_SPLIT}.txt\n"
            write_file(self.folder / "data.yaml", f"{split}names:\n{listed}".encode())
            images = "".join(f"{line}\n" for line in self._yolo_images)
            write_file(self.folder / f"{YOLO_SPLIT}.txt", images.encode())
        elif self.fmt == "coco":
            doc = {**self.coco, "categories": coco_categories(names)}
            write_file(self.folder / "instances.json", json.dumps(doc).encode())
