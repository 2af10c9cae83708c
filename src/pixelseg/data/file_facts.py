"""What a dataset's files are, learnt once and kept on disk, so that a later start only stats them.

One record per file, keyed by its path and valued with its size and modification time (a
changed file is looked at again, an unchanged one is not):

- an image's header: stored size, mode, format, EXIF orientation (so the size as
  ``read_image`` returns it, upright), alpha; and whether its pixel data was read through
  (``read_header(verify=True)``: a cheap full read that finds truncated and damaged files);
- a mask's decoded size and label counts (value -> pixels, after the reader's remapping).

Every consumer reads these facts: the item inspection (``inspect.py``, behind the training
pre-check and ``pixelseg check-data``), the mask-folder class scan, the class statistics and
the fingerprint. Facts are not verdicts: a mask with a bad label keeps its facts, and the
inspection that reads them reports it again on every start. A file that cannot be read has no
facts, so it is looked at (and reported) every time. One JSON file per dataset split lives
under the user cache folder (``default_cache_dir``), never inside the dataset.

    facts = source.file_facts()
    image = facts.image_facts(item.image)          # ImageFacts; BadFile names the file
    mask = facts.mask_facts(item, source.decode_mask)
    facts.save()                                   # best effort, atomic
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from ..files import atomic_write_bytes
from .imageio import MAX_PIXELS, NOT_AN_IMAGE, PIL_FORMATS
from .sample import Item

CACHE_VERSION = 3
ORIENTATION_TAG = 0x0112
SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees


class BadFile(PixelsegError):
    """A file that cannot be used; ``str()`` is ``"path: message"``, as every user error."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = Path(path), message


def default_cache_dir() -> Path:
    """``$PIXELSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/pixelseg``, else ``~/.cache/pixelseg``."""
    if os.environ.get("PIXELSEG_CACHE_DIR"):
        return Path(os.environ["PIXELSEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pixelseg"


@dataclass(frozen=True)
class ImageFacts:
    width: int  # as stored, before the EXIF orientation
    height: int
    mode: str = "RGB"
    format: str | None = None
    orientation: int = 1
    alpha: bool = False
    verified: bool = False  # the pixel data was read through, not only the header

    @property
    def upright(self) -> tuple[int, int]:
        """(H, W) once the EXIF orientation is applied, as ``read_image`` returns it."""
        if self.orientation in SWAPS_SIDES:
            return self.width, self.height
        return self.height, self.width


@dataclass(frozen=True)
class MaskFacts:
    height: int
    width: int
    counts: dict[int, int] = field(default_factory=dict)  # label value -> pixels
    mode: str = ""  # of the mask file; "" when the label map is not an image file (COCO)
    orientation: int = 1

    @functools.cached_property
    def _range(self) -> tuple[int, int]:
        labels = [v for v in self.counts if v != IGNORE_INDEX]
        return (min(labels), max(labels)) if labels else (0, -1)

    @property
    def high(self) -> int:
        """The largest label other than the ignore index (-1 when every pixel is ignored)."""
        return self._range[1]

    def bad_values(self, num_classes: int) -> list[int]:
        """Values that are neither a class id nor IGNORE_INDEX, sorted."""
        low, high = self._range
        if low >= 0 and high < num_classes:
            return []
        return sorted(v for v in self.counts if not 0 <= v < num_classes and v != IGNORE_INDEX)


def value_counts(mask: np.ndarray) -> dict[int, int]:
    """Pixel count of every value in a label map."""
    flat = mask.ravel()
    if flat.size and flat.min() >= 0 and flat.max() < 65536:
        counts = np.bincount(flat)
        nz = np.flatnonzero(counts)
        return dict(zip(nz.tolist(), counts[nz].tolist()))
    values, counts = np.unique(flat, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation, read from the header only: Pillow's ``getexif`` on a PNG without
    an eXIf chunk before the pixel data would decode the whole file to look after it."""
    # A PNG's "Raw profile type exif" text chunk is EXIF too (``read_image`` applies it).
    exif = "exif" in img.info or "Raw profile type exif" in img.info
    if not exif and img.format != "TIFF":
        return 1
    return int(img.getexif().get(ORIENTATION_TAG, 1) or 1)


def read_header(path: str | Path, verify: bool = False) -> ImageFacts:
    """Open without decoding; with ``verify``, also read the whole file cheaply (``verified``
    facts), so a truncated or damaged one fails now and not in epoch 1: a JPEG is decoded at
    1/8 scale (every entropy-coded byte is read, a tenth of the work), a PNG has every chunk's
    CRC checked without inflating, other formats are decoded. One open either way.
    Raises BadFile naming the file when it cannot be used."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadFile(path, "file is empty (0 bytes)")
    except FileNotFoundError:
        raise BadFile(path, "file not found") from None
    try:
        # imageio turns DecompressionBombWarning into an error process-wide (catch_warnings
        # is not thread-safe); the explicit pixel count below holds even without it.
        with Image.open(path, formats=PIL_FORMATS) as img:
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            facts = ImageFacts(*img.size, img.mode, img.format, _orientation(img), alpha, verify)
            _check_pixel_count(path, facts)
            if verify and img.format == "PNG":
                img.verify()
            elif verify:
                if img.format == "JPEG":
                    img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
                img.load()
    except BadFile:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadFile(path, f"over the decompression-bomb limit ({e})") from None
    except Image.UnidentifiedImageError:
        raise BadFile(path, NOT_AN_IMAGE) from None
    except Exception as e:  # any failure to parse or read a file is damage, not a bug
        raise BadFile(path, f"unreadable or truncated image ({e})") from None
    return facts


def _check_pixel_count(path: Path, facts: ImageFacts) -> None:
    pixels = facts.width * facts.height
    if pixels > MAX_PIXELS:
        raise BadFile(
            path,
            f"{facts.width}x{facts.height} = {pixels:,} pixels, over the "
            f"decompression-bomb limit of {MAX_PIXELS:,}",
        )


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


# One instance per cache file and process: opening the train and the val split, then
# checking them, reuse the facts loaded once.
_LOADED: dict[Path, FileFacts] = {}
_LOADED_LOCK = threading.Lock()


class FileFacts:
    """Facts about one dataset split's files; thread-safe for the per-item methods."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.images: dict[str, list] = {}  # image path -> [size, mtime_ns, *ImageFacts]
        # image path -> [mask size, mask mtime_ns, h, w, mode, orientation, value, pixels, ...]:
        # flat lists, one per file (100k nested lists would make every garbage collection slow)
        self.masks: dict[str, list] = {}
        self.dirty = False
        try:
            data = json.loads(path.read_text())
            if data.get("version") == CACHE_VERSION:
                self.images, self.masks = data["images"], data["masks"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache yet, or a damaged one: start empty

    @classmethod
    def for_split(
        cls,
        format_name: str,
        root: str | Path,
        split: str,
        decoding: str,
        cache_dir: Path | None = None,
    ) -> FileFacts:
        """``decoding`` names what a mask's decoded labels depend on besides its file (e.g. a
        colour table): sources that decode the same files differently never share facts."""
        key = json.dumps([format_name, str(Path(root).resolve()), split, decoding])
        name = hashlib.sha256(key.encode()).hexdigest()[:40]
        path = (cache_dir or default_cache_dir()) / "file_facts" / f"{name}.json"
        with _LOADED_LOCK:
            if path not in _LOADED:
                _LOADED[path] = cls(path)
            return _LOADED[path]

    def image(self, path: Path) -> ImageFacts | None:
        """The image's facts when they were learnt from the file as it is now."""
        record = self.images.get(str(path))
        if record is not None and record[:2] == _stamp(path):
            return ImageFacts(*record[2:])
        return None

    def image_facts(self, path: Path, verified: bool = True) -> ImageFacts:
        """Cached facts, else the header (and, when ``verified``, the cheap read-through of
        ``read_header``) learnt now. Raises BadFile naming the file."""
        known = self.image(path)
        if known is not None and (known.verified or not verified):
            return known
        stamp = _stamp(path)
        facts = read_header(path, verify=verified)
        if stamp is not None:
            f = facts
            self.images[str(path)] = [*stamp, f.width, f.height, f.mode, f.format,
                                      f.orientation, f.alpha, f.verified]  # fmt: skip
            self.dirty = True
        return facts

    def upright_sizes(self, paths: Iterable[Path]) -> list[tuple[int, int]]:
        """Each image's (H, W) as ``read_image`` returns it, from its facts (the header is
        enough: not read through). Raises BadFile naming the first file that cannot be read."""
        return [self.image_facts(path, verified=False).upright for path in paths]

    def mask(self, item: Item) -> MaskFacts | None:
        record = self.masks.get(str(item.image))
        if item.mask is None or record is None or record[:2] != _stamp(item.mask):
            return None
        h, w, mode, orientation = record[2:6]
        counts = record[6:]  # value, pixels, value, pixels, ...
        return MaskFacts(h, w, dict(zip(counts[::2], counts[1::2])), mode, orientation)

    def mask_facts(
        self, item: Item, decode: Callable[[Item], np.ndarray], header: bool = True
    ) -> MaskFacts:
        """Cached facts, else ``decode(item)`` now (with the file's header when ``header``;
        not for label maps that are not image files). Raises what decoding raises."""
        known = self.mask(item)
        if known is not None:
            return known
        stamp = _stamp(item.mask)
        head = read_header(item.mask) if header else None
        mask = decode(item)
        facts = MaskFacts(
            int(mask.shape[0]),
            int(mask.shape[1]),
            value_counts(mask),
            head.mode if head else "",
            head.orientation if head else 1,
        )
        if stamp is not None:
            counts = [x for pair in facts.counts.items() for x in pair]
            self.masks[str(item.image)] = [*stamp, facts.height, facts.width, facts.mode,
                                           facts.orientation, *counts]  # fmt: skip
            self.dirty = True
        return facts

    def save(self) -> None:
        """Best effort: an unwritable cache folder only costs the decoding next time."""
        if not self.dirty:
            return
        record = {"version": CACHE_VERSION, "images": self.images, "masks": self.masks}
        try:
            atomic_write_bytes(self.path, json.dumps(record, separators=(",", ":")).encode())
            self.dirty = False
        except OSError:
            pass
