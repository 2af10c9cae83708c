"""LabelMe: each image with a same-stem ``.json`` of shapes beside it.

Accepted layouts::

    DATA/{train,val[,test]}/x.jpg + x.json      one folder per split (subfolders allowed)
    DATA/x.jpg + x.json ... + DATA/{train,val[,test]}.txt
                                                split lists: one stem or relative path a line

Class names come from ``classes.txt`` (or ``classes.yaml``) in id order when there is one,
otherwise from the sorted labels of every JSON in the dataset (so every split numbers them
alike), a ``_background_``/``background`` label first. Polygon, rectangle and circle shapes are
painted in file order, later over earlier; point and line shapes carry no area and are skipped.
Pixels no shape covers are ignored (255) unless the first class is ``_background_`` or
``background`` (labelme2voc's rule), when they are that class. A JSON that does not parse, a
label that is no class, a vertex outside the image or an unsupported shape names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import PixelsegError
from ..classes_file import find_classes_file, read_classes_file
from ..formats import DatasetFormat, register_format
from ..imageio import IMAGE_EXTENSIONS
from ..polygons import BACKGROUND_NAMES, Shape, outside_image, rasterize, uncovered_value
from ..sample import ClassTable, Item
from ..source import SegmentationSource

SPLITS = ("train", "val", "test")
AREA_SHAPES = ("polygon", "rectangle", "circle")
NO_AREA = ("point", "line", "linestrip")


def _has_json(folder: Path) -> bool:
    return folder.is_dir() and next(folder.glob("*.json"), None) is not None


def _split_folders(root: Path) -> dict[str, Path]:
    return {s: root / s for s in SPLITS if _has_json(root / s)}


def _split_lists(root: Path) -> dict[str, Path]:
    return {s: root / f"{s}.txt" for s in SPLITS if (root / f"{s}.txt").is_file()}


def detect(root: Path) -> bool:
    return bool(_split_folders(root)) or (bool(_split_lists(root)) and _has_json(root))


def splits(root: Path) -> list[str]:
    return list(_split_folders(root) or _split_lists(root))


def read_json(path: Path) -> dict:
    """A LabelMe file's contents, or the one-line error naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PixelsegError(f"{path}: not a readable LabelMe JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise PixelsegError(f"{path}: not a LabelMe file (no 'shapes' list)")
    return data


def _image_beside(json_path: Path) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        for candidate in (json_path.with_suffix(ext), json_path.with_suffix(ext.upper())):
            if candidate.is_file():
                return candidate
    return None


def _pairs_in_folder(folder: Path) -> tuple[list[Item], list[tuple[Path, str]]]:
    items, problems = [], []
    for js in sorted(folder.rglob("*.json")):
        image = _image_beside(js)
        if image is None:
            problems.append((js, "LabelMe JSON without an image of the same name beside it"))
        else:
            items.append(Item(image, js, str(js.relative_to(folder).with_suffix(""))))
    labelled = {it.image for it in items}
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        if image not in labelled:
            problems.append((image, "image has no LabelMe JSON beside it (unlabelled)"))
    return items, problems


def _pairs_from_list(root: Path, list_file: Path) -> tuple[list[Item], list[tuple[Path, str]]]:
    items, problems = [], []
    for lineno, line in enumerate(list_file.read_text().splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        js = (root / entry).with_suffix(".json")
        if not js.is_file():
            problems.append((list_file, f"line {lineno}: {js.name} not found"))
            continue
        image = _image_beside(js)
        if image is None:
            problems.append((js, "LabelMe JSON without an image of the same name beside it"))
        else:
            items.append(Item(image, js, str(js.relative_to(root).with_suffix(""))))
    return items, problems


def _labels_found(root: Path) -> tuple[str, ...]:
    """Every label of an area shape in every JSON of the dataset, sorted, a background
    label first."""
    folders = list(_split_folders(root).values()) or [root]
    labels: set[str] = set()
    for folder in folders:
        for js in folder.rglob("*.json"):
            try:
                shapes = read_json(js)["shapes"]
            except PixelsegError:  # reported with its item; its labels cannot count
                continue
            for shape in shapes:
                if isinstance(shape, dict) and shape.get("shape_type") not in NO_AREA:
                    labels.add(str(shape.get("label")))
    background = [n for n in BACKGROUND_NAMES if n in labels][:1]
    return tuple(background + sorted(labels - set(background)))


def class_table(root: Path) -> ClassTable:
    path = find_classes_file(root)
    if path is not None:
        return read_classes_file(path)[0]
    names = list(_labels_found(root))
    if not names:
        raise PixelsegError(f"{root}: the LabelMe files hold no labelled shape")
    return ClassTable(names)


class LabelMeSource(SegmentationSource):
    format_name = "labelme"
    label_file_per_item = True  # check-data files a label problem under it

    def __init__(self, items, classes, root, split, problems=()) -> None:
        super().__init__(items, classes, root, split)
        self.class_id = {name: i for i, name in enumerate(classes.names)}
        self.fill = uncovered_value(classes.names)
        self.problems = list(problems)

    def mask_decoding(self) -> str:
        return "labelme:" + ",".join(self.classes.names)

    def mask_size(self, item: Item) -> tuple[int, int]:
        return self._size(item.mask, read_json(item.mask))

    def _size(self, path: Path, data: dict) -> tuple[int, int]:
        try:
            h, w = int(data["imageHeight"]), int(data["imageWidth"])
        except (KeyError, TypeError, ValueError):
            raise PixelsegError(f"{path}: no imageHeight/imageWidth") from None
        if h < 1 or w < 1:
            raise PixelsegError(f"{path}: image size {h}x{w} is empty")
        return h, w

    def shapes(self, path: Path, data: dict, h: int, w: int) -> list[Shape]:
        out = []
        for i, s in enumerate(data["shapes"], 1):
            kind = (s.get("shape_type") or "polygon") if isinstance(s, dict) else None
            if kind in NO_AREA:
                continue
            label = str(s.get("label")) if kind else None
            where = f"{path}: shape {i} ({label!r})"
            if kind not in AREA_SHAPES:
                raise PixelsegError(
                    f"{where}: shape type {kind!r} is not read (polygon, rectangle and circle are)"
                )
            if label not in self.class_id:
                raise PixelsegError(
                    f"{where}: label is not a class (classes: {', '.join(self.classes.names)})"
                )
            try:
                points = tuple((float(x), float(y)) for x, y in s["points"])
            except (KeyError, TypeError, ValueError):
                raise PixelsegError(f"{where}: 'points' is not a list of [x, y]") from None
            need = 3 if kind == "polygon" else 2
            if len(points) < need:
                raise PixelsegError(f"{where}: a {kind} needs at least {need} points")
            bad = outside_image(points, h, w)
            if bad is not None:
                raise PixelsegError(
                    f"{where}: point ({bad[0]:g}, {bad[1]:g}) is outside the {w}x{h} image"
                )
            out.append(Shape(self.class_id[label], kind, points))
        return out

    def decode_mask(self, item: Item) -> np.ndarray:
        data = read_json(item.mask)
        h, w = self._size(item.mask, data)
        return rasterize(self.shapes(item.mask, data, h, w), h, w, self.fill)

    def layout_problems(self) -> list[tuple[Path, str]]:
        return self.problems[:100]


def open_source(root: Path, split: str) -> LabelMeSource:
    folders, lists = _split_folders(root), _split_lists(root)
    if split in folders:
        items, problems = _pairs_in_folder(folders[split])
    elif split in lists and not folders:
        items, problems = _pairs_from_list(root, lists[split])
    else:
        raise PixelsegError(f"{root}: no LabelMe split {split!r}")
    if not items:
        raise PixelsegError(f"{root}: split {split!r} has no image with a LabelMe JSON")
    return LabelMeSource(items, class_table(root), root, split, problems)


register_format(DatasetFormat("labelme", detect, open_source, splits, priority=45))
