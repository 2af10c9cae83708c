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


class StagedFolder:
    """A folder written as ``OUT.partial`` and renamed to ``OUT`` by ``commit()`` once every file
    in it is on disk, so OUT appears whole or not at all; ``abort()`` removes the partial one.
    An existing OUT is never replaced; a partial folder a killed run left is ours to remove."""

    def __init__(self, out: str | Path, flag: str = "output folder") -> None:
        self.out = Path(out)
        if self.out.exists():
            raise PixelsegError(f"{self.out}: already exists; choose another {flag}")
        self.path = self.out.with_name(f"{self.out.name}.partial")
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)

    def commit(self) -> Path:
        for folder, _, _ in os.walk(self.path):
            fsync_folder(folder)
        os.replace(self.path, self.out)
        fsync_folder(self.out.parent)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        """Committed when the block ends normally, removed when it raises (Ctrl-C included)."""
        if error_type is None:
            self.commit()
        else:
            self.abort()


class DatasetWriter:
    """Writes a dataset into a ``StagedFolder``: ``close()`` puts it in place, ``abort()``
    removes it."""

    format_name = "?"

    def __init__(self, out: str | Path, classes: ClassTable) -> None:
        self.staged = StagedFolder(out)
        self.stage = self.staged.path
        self.classes = classes

    def add(self, split: str, name: str, image_file: Path, mask: np.ndarray) -> None:
        """One labelled image: ``name`` is its path within the split, without suffix."""
        raise NotImplementedError

    def finish(self) -> None:
        """Files written once every image is in (class lists, annotation files)."""

    def close(self) -> Path:
        self.finish()
        return self.staged.commit()

    def abort(self) -> None:
        self.staged.abort()
