"""COCO instance annotations turned into semantic label maps (needs ``pip install pixelseg[coco]``).

Accepted layout (the standard one)::

    DATA/annotations/instances_<split><year>.json     e.g. instances_train2017.json
    DATA/<split><year>/*.jpg                          e.g. train2017/  (also DATA/images/train2017/,
                                                      DATA/<split>/ or DATA/images/<split>/)

The split name is the part after ``instances_`` without the trailing year: ``train2017`` ->
``train``, ``val2017`` -> ``val``. When several years give the same split name (train2014 and
train2017), the latest one is used.

Label maps:
- Category ids (sparse, e.g. 1..90) become contiguous class ids 1..K in id order; 0 is
  ``background`` (every pixel no instance covers). Category names are kept.
- Crowd regions (``iscrowd: 1``) are painted IGNORE_INDEX first; ordinary instances are then
  painted over them, the largest (by decoded pixel count) first and smaller ones on top, ties
  broken by annotation id, so a small object in front of a large one stays visible and the
  result never depends on the order of the JSON.
- Polygons, uncompressed RLE and compressed RLE are all accepted; images without any
  annotation are all background.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import PixelsegError
from ..formats import DatasetFormat, register_format
from ..sample import ClassTable, Item, default_palette
from ..source import SegmentationSource

ANNOTATION_GLOB = "instances_*.json"


@functools.cache
def _mask_api():
    """pycocotools.mask, imported only when a COCO dataset is opened."""
    try:
        from pycocotools import mask as mask_api
    except ImportError:
        raise PixelsegError(
            "reading COCO annotations needs pycocotools: pip install pixelseg[coco]"
        ) from None
    return mask_api


def annotation_files(root: Path) -> dict[str, Path]:
    """Split name -> instances JSON (the latest year wins when several share a name)."""
    found: dict[str, Path] = {}
    for path in sorted((root / "annotations").glob(ANNOTATION_GLOB)):
        full = path.stem[len("instances_") :]
        found[re.sub(r"\d+$", "", full) or full] = path
    return found


def detect(root: Path) -> bool:
    return (root / "annotations").is_dir() and bool(annotation_files(root))


def splits(root: Path) -> list[str]:
    return list(annotation_files(root))


def image_folder(root: Path, split: str, ann_file: Path) -> Path:
    full = ann_file.stem[len("instances_") :]
    candidates = [root / full, root / "images" / full, root / split, root / "images" / split]
    for folder in candidates:
        if folder.is_dir():
            return folder
    shown = ", ".join(str(c.relative_to(root)) for c in dict.fromkeys(candidates))
    raise PixelsegError(f"{root}: no image folder for {ann_file.name} (looked for {shown})")


@dataclass
class ImageRecord:
    id: int
    height: int
    width: int
    annotations: list[dict] = field(default_factory=list)


class COCOSource(SegmentationSource):
    format_name = "coco"

    def __init__(
        self, items, classes, root, split, ann_file: Path, records, class_of_category, orphans=()
    ):
        super().__init__(items, classes, root, split)
        self.ann_file = ann_file
        self.records: dict[Path, ImageRecord] = records  # keyed by image path
        self.class_of_category: dict[int, int] = class_of_category
        self.orphan_annotations = list(orphans)  # ids of annotations whose image is not listed

    def mask_size(self, item: Item) -> tuple[int, int]:
        """(H, W) of the label map, from the JSON: no decoding needed."""
        rec = self.records[item.image]
        return rec.height, rec.width

    def decode_mask(self, item: Item) -> np.ndarray:
        rec = self.records[item.image]
        h, w = rec.height, rec.width
        out = np.zeros((h, w), dtype=np.int64)
        things = []
        for ann in rec.annotations:
            region = self._decode_region(ann, h, w)
            if ann.get("iscrowd"):
                out[region] = IGNORE_INDEX
            else:
                things.append((-int(region.sum()), int(ann.get("id", 0)), region, ann))
        things.sort(key=lambda t: t[:2])  # largest first, then by annotation id
        for _, _, region, ann in things:
            cls = self.class_of_category.get(ann.get("category_id"))
            if cls is None:
                raise PixelsegError(
                    f"{self.ann_file}: annotation {ann.get('id')} has category_id "
                    f"{ann.get('category_id')!r}, which is not in 'categories'"
                )
            out[region] = cls
        return out

    def _decode_region(self, ann: dict, h: int, w: int) -> np.ndarray:
        mask_api = _mask_api()
        seg = ann.get("segmentation")
        where = f"{self.ann_file}: annotation {ann.get('id')}"
        try:
            if isinstance(seg, list):
                # A 4-number list would be taken for a box by pycocotools: keep real polygons.
                polys = [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
                if not polys:
                    return np.zeros((h, w), dtype=bool)
                rle = mask_api.merge(mask_api.frPyObjects(polys, h, w))
            elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
                if list(seg["size"]) != [h, w]:
                    raise PixelsegError(f"{where}: RLE size {seg['size']} but image is {h}x{w}")
                if isinstance(seg["counts"], list):
                    rle = mask_api.frPyObjects(seg, h, w)  # uncompressed RLE (crowds)
                else:
                    rle = dict(seg)
                    if isinstance(rle["counts"], str):
                        rle["counts"] = rle["counts"].encode("ascii")
            else:
                raise PixelsegError(f"{where}: 'segmentation' is neither polygons nor RLE")
            return mask_api.decode(rle).astype(bool)
        except PixelsegError:
            raise
        except Exception as e:  # pycocotools raises plain Exception / ValueError
            raise PixelsegError(f"{where}: cannot decode segmentation ({e})") from None

    def layout_problems(self) -> list[tuple[Path, str]]:
        return [
            (self.ann_file, f"annotation {a} refers to an image id not in 'images'")
            for a in self.orphan_annotations[:100]
        ]


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PixelsegError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict):
        raise PixelsegError(f"{path}: not a COCO instances file (expected a JSON object)")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise PixelsegError(f"{path}: not a COCO instances file (missing {', '.join(missing)})")
    return data


def open_source(root: Path, split: str) -> COCOSource:
    _mask_api()  # fail now, not in a data-loader worker
    # pycocotools' Cython arrays predate NumPy 2's copy keyword: a harmless DeprecationWarning
    # for every decoded mask (shown under pytest). Narrow filter: this message, that module.
    warnings.filterwarnings(
        "ignore",
        "__array__ implementation doesn't accept a copy",
        DeprecationWarning,
        "pycocotools",
    )
    ann_file = annotation_files(root).get(split)
    if ann_file is None:
        raise PixelsegError(f"{root}/annotations: no {ANNOTATION_GLOB} for split {split!r}")
    folder = image_folder(root, split, ann_file)
    data = _load_json(ann_file)
    try:
        categories = sorted(data["categories"], key=lambda c: c["id"])
        class_of_category = {int(c["id"]): i + 1 for i, c in enumerate(categories)}
        names = ["background"] + [str(c.get("name", f"category_{c['id']}")) for c in categories]
        records, items, by_id = {}, [], {}
        for img in sorted(data["images"], key=lambda i: i["file_name"]):
            path = folder / img["file_name"]
            rec = ImageRecord(int(img["id"]), int(img["height"]), int(img["width"]))
            records[path] = by_id[rec.id] = rec
            items.append(Item(path, ann_file, Path(img["file_name"]).stem))
        orphans = []
        for ann in data["annotations"]:
            rec = by_id.get(ann.get("image_id"))
            if rec is None:
                orphans.append(ann.get("id"))
            else:
                rec.annotations.append(ann)
    except (KeyError, TypeError, ValueError) as e:
        raise PixelsegError(f"{ann_file}: malformed COCO entry ({type(e).__name__}: {e})") from None
    if not items:
        raise PixelsegError(f"{ann_file}: lists no images")
    classes = ClassTable(names, default_palette(len(names)))
    return COCOSource(items, classes, root, split, ann_file, records, class_of_category, orphans)


register_format(DatasetFormat("coco", detect, open_source, splits, priority=40))
