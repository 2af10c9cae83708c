"""YOLO segmentation labels, in the Ultralytics layout::

    DATA/data.yaml                     names: [a, b, ...]  or  names: {0: a, 1: b, ...}
    DATA/images/{train,val[,test]}/x.jpg
    DATA/labels/{train,val[,test]}/x.txt   one object a line: class x1 y1 x2 y2 ... (0..1)

Coordinates are fractions of the image's width and height (of the upright image, EXIF
orientation applied, as Ultralytics reads it). Polygons are painted in line order, later over
earlier. Pixels no polygon covers are ignored (255) unless the first name is ``_background_``
or ``background``, when they are that class. An image without a label file, or with an empty
one, has no object. A class id beyond the names, a box line (5 numbers: a detection label), an
odd number of coordinates or a vertex outside the image names the file and the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ...errors import PixelsegError
from ..formats import DatasetFormat, register_format
from ..imageio import IMAGE_EXTENSIONS, PIL_FORMATS
from ..polygons import Shape, outside_image, rasterize, uncovered_value
from ..sample import ClassTable, Item
from ..source import SegmentationSource

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml")
EXIF_ORIENTATION = 274
SWAPPED = (5, 6, 7, 8)  # EXIF orientations that turn the image a quarter


def _yaml_file(root: Path) -> Path | None:
    return next((root / n for n in YAML_NAMES if (root / n).is_file()), None)


def detect(root: Path) -> bool:
    return (
        (root / "images").is_dir() and (root / "labels").is_dir() and _yaml_file(root) is not None
    )


def splits(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "images").iterdir() if p.is_dir())


def class_table(root: Path) -> ClassTable:
    path = _yaml_file(root)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PixelsegError(f"{path}: not valid YAML ({e})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise PixelsegError(f"{path}: 'names' keys must be class ids 0, 1, ...") from None
        if ids != list(range(len(ids))):
            raise PixelsegError(f"{path}: 'names' ids must be 0..{len(ids) - 1} without gaps")
        names = [names.get(i, names.get(str(i))) for i in ids]
    if not isinstance(names, list) or not names:
        raise PixelsegError(f"{path}: needs 'names', a list or a mapping of class ids")
    return ClassTable([str(n) for n in names])


def upright_size(image: Path) -> tuple[int, int]:
    """(H, W) of the image as pixelseg reads it (EXIF orientation applied), from its header."""
    try:
        with Image.open(image, formats=PIL_FORMATS) as img:
            w, h = img.size
            turned = img.getexif().get(EXIF_ORIENTATION) in SWAPPED
    except FileNotFoundError:
        raise PixelsegError(f"{image}: file not found") from None
    except Exception as e:  # noqa: BLE001 (any header a decoder chokes on is this file's fault)
        raise PixelsegError(f"{image}: unreadable image ({e})") from None
    return (w, h) if turned else (h, w)


class YOLOSource(SegmentationSource):
    format_name = "yolo"
    label_file_per_item = True  # check-data files a label problem under it

    def __init__(self, items, classes, root, split) -> None:
        super().__init__(items, classes, root, split)
        self.fill = uncovered_value(classes.names)

    def mask_decoding(self) -> str:
        return "yolo:" + ",".join(self.classes.names)

    def mask_size(self, item: Item) -> tuple[int, int]:
        return upright_size(item.image)

    def shapes(self, path: Path, h: int, w: int) -> list[Shape]:
        if not path.is_file():  # no label file: an image without objects
            return []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise PixelsegError(f"{path}: unreadable label file ({e})") from None
        out = []
        n = self.classes.num_classes
        for lineno, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}: line {lineno}"
            try:
                cls, coords = int(fields[0]), [float(v) for v in fields[1:]]
            except ValueError:
                raise PixelsegError(f"{where}: expected 'class x1 y1 x2 y2 ...' numbers") from None
            if not 0 <= cls < n:
                raise PixelsegError(
                    f"{where}: class {cls} is not one of the {n} names (0..{n - 1})"
                )
            if len(coords) == 4:
                raise PixelsegError(
                    f"{where}: a box (class cx cy w h), not a polygon: "
                    "this is a detection label, not a segmentation one"
                )
            if len(coords) < 6 or len(coords) % 2:
                raise PixelsegError(
                    f"{where}: a polygon needs an even number (>= 6) of coordinates, "
                    f"got {len(coords)}"
                )
            points = tuple((x * w, y * h) for x, y in zip(coords[::2], coords[1::2]))
            bad = outside_image(points, h, w)
            if bad is not None:
                raise PixelsegError(
                    f"{where}: point ({bad[0] / w:g}, {bad[1] / h:g}) is outside the image "
                    "(coordinates are fractions in [0, 1])"
                )
            out.append(Shape(cls, "polygon", points))
        return out

    def decode_mask(self, item: Item) -> np.ndarray:
        h, w = upright_size(item.image)
        return rasterize(self.shapes(item.mask, h, w), h, w, self.fill)


def open_source(root: Path, split: str) -> YOLOSource:
    images = root / "images" / split
    if not images.is_dir():
        raise PixelsegError(f"{root}: no YOLO split {split!r} (expected images/{split}/)")
    labels = root / "labels" / split
    items = [
        Item(
            p,
            labels / p.relative_to(images).with_suffix(".txt"),
            str(p.relative_to(images).with_suffix("")),
        )
        for p in sorted(images.rglob("*"))
        if p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not items:
        raise PixelsegError(f"{images}: no images")
    return YOLOSource(items, class_table(root), root, split)


register_format(DatasetFormat("yolo", detect, open_source, splits, priority=44))
