"""Tiny datasets of every supported layout, written with PIL (16-32 px images), and broken
files of every kind. Fixtures wrapping them are in conftest.py."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_rgb(path: Path, seed: int = 0, h: int = H, w: int = W, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb(seed, h, w)).save(path, fmt)
    return path


def save_mask(path: Path, mask: np.ndarray, palette: list[int] | None = None) -> Path:
    """Single-channel PNG of ``mask`` values, or a palette PNG when ``palette`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask.astype(np.uint8))  # mode L: the values are the class ids
    if palette is not None:
        img = Image.frombytes("P", img.size, img.tobytes())  # same values, as palette indices
        img.putpalette(palette + [0] * (768 - len(palette)))
    img.save(path)
    return path


def stripes(values: list[int], h: int = H, w: int = W) -> np.ndarray:
    """Vertical stripes, one per value, so every value is present."""
    cols = np.array_split(np.arange(w), len(values))
    out = np.zeros((h, w), dtype=np.int64)
    for v, c in zip(values, cols):
        out[:, c] = v
    return out


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 1x1 PNG whose header claims ``width`` x ``height``: only the header is read."""
    save_mask(path, np.zeros((1, 1), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def exif_jpeg(path: Path, orientation: int, h: int = H, w: int = W, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb(seed, h, w)).save(path, "JPEG", exif=exif.tobytes())
    return path


# --- layouts ---------------------------------------------------------------------------------

CAMVID_MASK = stripes([0, 3, 8, 11])  # 11 is void


def build_camvid(root: Path) -> Path:
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            save_rgb(root / split / f"f{i}.png", seed=i)
            save_mask(root / f"{split}annot" / f"f{i}.png", CAMVID_MASK)
    return root


VOC_PALETTE = [c for rgb_ in [(0, 0, 0), (128, 0, 0), (0, 128, 0)] for c in rgb_]


def build_voc(root: Path) -> Path:
    """VOCdevkit/VOC2012 nesting; masks are palette PNGs with a 255 border."""
    base = root / "VOCdevkit" / "VOC2012"
    mask = stripes([0, 15, 12])
    mask[0, :] = 255
    for i, stem in enumerate(["2007_000001", "2007_000002"]):
        save_rgb(base / "JPEGImages" / f"{stem}.jpg", seed=i)
        save_mask(base / "SegmentationClass" / f"{stem}.png", mask, VOC_PALETTE)
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000001\n")
    (sets / "val.txt").write_text("2007_000002\n")
    return root


CITYSCAPES_LABELS = stripes([7, 26, 0, 9, 33])  # road, car, unlabeled, parking, bicycle


def build_cityscapes(root: Path) -> Path:
    for split, city in (("train", "aachen"), ("val", "lindau")):
        stem = f"{city}_000000_000019"
        save_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        save_mask(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", CITYSCAPES_LABELS)
    return root


def build_coco(root: Path) -> Path:
    """val2017 with three images: a large polygon (dog) with a smaller overlapping polygon
    (person) on top, a compressed-RLE car, a crowd (uncompressed RLE), and an empty image."""
    from pycocotools import mask as mask_api

    for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
        save_rgb(root / "val2017" / name, seed=i)
    car = np.zeros((H, W), dtype=np.uint8, order="F")
    car[4:10, 20:30] = 1
    car_rle = mask_api.encode(car)
    car_rle["counts"] = car_rle["counts"].decode("ascii")
    crowd = np.zeros((H, W), dtype=np.uint8)
    crowd[16:24, 0:8] = 1
    flat = crowd.flatten(order="F")  # uncompressed RLE: run lengths, starting with zeros
    runs, prev, count = [], 0, 0
    for v in flat:
        if v != prev:
            runs.append(count)
            prev, count = v, 0
        count += 1
    runs.append(count)
    anns = [
        # person (small) listed before the dog (large): the order in the JSON must not matter
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
         "segmentation": [[4, 4, 12, 4, 12, 12, 4, 12]]},
        {"id": 2, "image_id": 1, "category_id": 18, "iscrowd": 0,
         "segmentation": [[0, 0, 16, 0, 16, 16, 0, 16]]},
        {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": car_rle},
        {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 1,
         "segmentation": {"counts": runs, "size": [H, W]}},
    ]  # fmt: skip
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "b.jpg", "height": H, "width": W},
            {"id": 3, "file_name": "c.jpg", "height": H, "width": W},
        ],
        "annotations": anns,
        "categories": [
            {"id": 18, "name": "dog"},
            {"id": 1, "name": "person"},
            {"id": 3, "name": "car"},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


def build_mask_folder(root: Path) -> Path:
    for split in ("train", "val"):
        for i in range(2):
            save_rgb(root / split / "images" / f"{split}{i}.png", seed=i)
            save_mask(root / split / "masks" / f"{split}{i}.png", stripes([0, 1, 2]))
    return root


# The shared CamVid copy sits beside the repository: <repo>/../shared/datasets/camvid.
REAL_CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "camvid"


# LabelMe and YOLO: the same scene per image, in pixel-corner coordinates on a 32x24 image:
# road over the bottom half, a car square (pixels 4..11 x 8..15) painted over it, a person disc.
LABELME_SHAPES = [
    {"label": "road", "shape_type": "rectangle", "points": [[0, 12], [32, 24]]},
    {"label": "car", "shape_type": "polygon", "points": [[4, 8], [12, 8], [12, 16], [4, 16]]},
    {"label": "person", "shape_type": "circle", "points": [[24, 6], [24, 3]]},
    {"label": "tip", "shape_type": "point", "points": [[1, 1]]},  # no area: skipped
]


def write_labelme(json_path: Path, shapes: list[dict], seed: int = 0) -> Path:
    image = save_rgb(json_path.with_suffix(".png"), seed=seed)
    doc = {
        "version": "5.4.1",
        "shapes": shapes,
        "imagePath": image.name,
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
    }
    json_path.write_text(json.dumps(doc))
    return json_path


def build_labelme(root: Path) -> Path:
    """train/ and val/ folders of images with same-stem LabelMe JSON beside them."""
    for split in ("train", "val"):
        for i in range(2):
            write_labelme(root / split / f"{split}{i}.json", LABELME_SHAPES, seed=i)
    return root


def build_yolo(root: Path) -> Path:
    """Ultralytics layout: data.yaml, images/{train,val}, labels/{train,val} (same scene as
    LabelMe; class 0 is background, so what no polygon covers is background)."""
    root.mkdir(parents=True)
    (root / "data.yaml").write_text("names:\n  0: background\n  1: car\n  2: road\n")
    road = "2 0 0.5 1 0.5 1 1 0 1"
    car = "1 0.125 0.3333333 0.375 0.3333333 0.375 0.6666667 0.125 0.6666667"
    lines = f"{road}\n{car}\n"
    for split in ("train", "val"):
        for i in range(2):
            save_rgb(root / "images" / split / f"{split}{i}.png", seed=i)
            label = root / "labels" / split / f"{split}{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(lines)
    return root


# Hostile files: decodable pixels, damaged metadata, or a format pixelseg does not read.
def png_bytes_with_text(key: str, value: str) -> bytes:
    """A small PNG carrying a text chunk (e.g. a "Raw profile type exif" that is not hex)."""
    import io

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def png_bytes_with_chunk(ctype: bytes, data: bytes) -> bytes:
    """A small PNG with a raw chunk (e.g. a damaged ``eXIf``) inserted before its pixels."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG")
    raw = buf.getvalue()
    crc = struct.pack(">I", zlib.crc32(ctype + data))
    chunk = struct.pack(">I", len(data)) + ctype + data + crc
    at = raw.index(b"IDAT") - 4
    return raw[:at] + chunk + raw[at:]


RAW_EXIF_NOT_HEX = png_bytes_with_text("Raw profile type exif", "\nexif\n      10\nzz not hex\n")
BAD_EXIF_CHUNK = png_bytes_with_chunk(b"eXIf", b"XX\x00\x2a not a TIFF header")
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"
