"""What every dataset writer shares: a staging folder renamed into place when complete, the
images copied as they are, and the class regions traced into polygons."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import PixelsegError
from ...files import fsync_folder
from ..polygons import BACKGROUND_NAMES, mask_to_polygons
from ..sample import ClassTable


def write_file(path: Path, data: bytes) -> None:
    """Write and flush to disk: the staging folder is renamed into place only once every file
    in it is durable, so a crash never leaves a torn file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def copy_file(src: Path, dst: Path) -> None:
    write_file(dst, Path(src).read_bytes())


def class_regions(
    mask: np.ndarray, classes: ClassTable, min_area: int = 0
) -> list[tuple[int, list[tuple[int, int]]]]:
    """(class id, polygon) for every region of every class in ``mask``, in class order. A first
    class named like a background is left out: the readers give uncovered pixels to it."""
    skip = {0} if classes.names and classes.names[0] in BACKGROUND_NAMES else set()
    out = []
    for c in np.unique(mask).tolist():
        if c == IGNORE_INDEX or c in skip:
            continue
        out += [(int(c), poly) for poly in mask_to_polygons(mask == c, min_area)]
    return out


class DatasetWriter:
    """Writes a dataset into ``OUT.partial`` and renames it to ``OUT`` when ``close()`` is
    called; ``abort()`` removes the partial folder. An existing ``OUT`` is never replaced."""

    format_name = "?"

    def __init__(self, out: str | Path, classes: ClassTable) -> None:
        self.out = Path(out)
        if self.out.exists():
            raise PixelsegError(f"{self.out}: already exists; choose another output folder")
        self.stage = self.out.with_name(f"{self.out.name}.partial")
        if self.stage.exists():  # what a killed conversion left: ours to remove
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)
        self.classes = classes

    def add(self, split: str, name: str, image_file: Path, mask: np.ndarray) -> None:
        """One labelled image: ``name`` is its path within the split, without suffix."""
        raise NotImplementedError

    def finish(self) -> None:
        """Files written once every image is in (class lists, annotation files)."""

    def close(self) -> Path:
        self.finish()
        for folder, _, _ in os.walk(self.stage):
            fsync_folder(folder)
        os.replace(self.stage, self.out)
        fsync_folder(self.out.parent)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
