"""What decoding a dataset's files teaches, kept on disk so that a later start only stats them.

Before training, every image is verified and every mask decoded for its size and label range
(``preflight.py``), and a mask folder without a classes file is scanned for its largest label
(``readers/mask_folder.py``). On 100k small images that is most of the start-up time. The facts
are stored in one JSON file per dataset split under the user cache folder (next to the class
statistics, see ``class_stats.default_cache_dir``), keyed per item by the image's path and
valued with each file's size and modification time: a changed file is decoded again, an
unchanged one is not. Facts are not verdicts: a mask with a bad label keeps its facts, and the
check that reads them reports it again on every start. A file that cannot be decoded has no
facts, so it is looked at (and reported) every time.

    facts = FileFacts.for_split("mask-folder", root, "train", decoding="ids")
    image = facts.image(item) or facts.learn_image(item)   # ImageFacts(width, height)
    facts.save()                                            # best effort, atomic
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..constants import IGNORE_INDEX
from .imageio import atomic_write_bytes

if TYPE_CHECKING:  # source.py imports this module
    from .source import Item

CACHE_VERSION = 1


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int


@dataclass(frozen=True)
class MaskFacts:
    height: int
    width: int
    low: int  # smallest label other than the ignore index (0 when every pixel is ignored)
    high: int  # largest label other than the ignore index (-1 when every pixel is ignored)

    @classmethod
    def of(cls, mask: np.ndarray) -> MaskFacts:
        valid = mask[mask != IGNORE_INDEX]
        low, high = (int(valid.min()), int(valid.max())) if valid.size else (0, -1)
        return cls(int(mask.shape[0]), int(mask.shape[1]), low, high)

    def labels_fit(self, num_classes: int) -> bool:
        return self.low >= 0 and self.high < num_classes


def verify_image(path: Path) -> ImageFacts:
    """Check the file's structure (PNG CRCs, truncation) without decoding; PIL raises if bad."""
    with Image.open(path) as img:
        img.verify()
        return ImageFacts(*img.size)


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
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
        self.images: dict[str, list] = {}  # image path -> [size, mtime_ns, width, height]
        self.masks: dict[str, list] = {}  # image path -> [mask size, mask mtime_ns, h, w, lo, hi]
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
        from .class_stats import default_cache_dir

        key = json.dumps([format_name, str(Path(root).resolve()), split, decoding])
        name = hashlib.sha256(key.encode()).hexdigest()[:40]
        path = (cache_dir or default_cache_dir()) / "file_facts" / f"{name}.json"
        with _LOADED_LOCK:
            if path not in _LOADED:
                _LOADED[path] = cls(path)
            return _LOADED[path]

    def image(self, item: Item) -> ImageFacts | None:
        """The image's facts when they were learnt from the file as it is now."""
        record = self.images.get(str(item.image))
        if record is not None and record[:2] == _stamp(item.image):
            return ImageFacts(*record[2:])
        return None

    def learn_image(self, item: Item) -> ImageFacts:
        """Verify the image (raises what PIL raises for a bad file) and remember its facts."""
        stamp = _stamp(item.image)
        facts = verify_image(item.image)
        if stamp is not None:
            self.images[str(item.image)] = [*stamp, facts.width, facts.height]
            self.dirty = True
        return facts

    def mask(self, item: Item) -> MaskFacts | None:
        record = self.masks.get(str(item.image))
        if item.mask is not None and record is not None and record[:2] == _stamp(item.mask):
            return MaskFacts(*record[2:])
        return None

    def learn_mask(self, item: Item, mask: np.ndarray) -> MaskFacts:
        """Remember the facts of ``mask``, the decoded ``item.mask``."""
        facts = MaskFacts.of(mask)
        stamp = _stamp(item.mask)
        if stamp is not None:
            self.masks[str(item.image)] = [*stamp, facts.height, facts.width, facts.low, facts.high]
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
