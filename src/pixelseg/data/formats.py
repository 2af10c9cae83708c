"""Dataset formats: each reader registers how to recognise its layout and open a split.

``open_split(root, split, format="auto")`` is the one entry point the rest of pixelseg uses.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import PixelsegError
from .source import ConcatSource, SegmentationSource


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    detect: Callable[[Path], bool]  # cheap: looks at folder names only
    open: Callable[[Path, str], SegmentationSource]
    splits: Callable[[Path], list[str]]  # splits present on disk
    priority: int = 100  # lower is tried first by auto-detection


_FORMATS: dict[str, DatasetFormat] = {}


def register_format(fmt: DatasetFormat) -> DatasetFormat:
    if fmt.name in _FORMATS:
        raise ValueError(f"dataset format {fmt.name!r} is registered twice")
    _FORMATS[fmt.name] = fmt
    return fmt


def _load_readers() -> None:
    from . import readers

    for info in pkgutil.iter_modules(readers.__path__):
        importlib.import_module(f"{readers.__name__}.{info.name}")


def list_formats() -> list[str]:
    _load_readers()
    return sorted(_FORMATS)


def resolve_format(root: str | Path, format: str = "auto") -> DatasetFormat:
    _load_readers()
    root = Path(root)
    if not root.is_dir():
        raise PixelsegError(f"{root}: dataset folder not found")
    if format != "auto":
        if format not in _FORMATS:
            raise PixelsegError(
                f"--format {format}: unknown; choose from {', '.join(sorted(_FORMATS))}"
            )
        return _FORMATS[format]
    for fmt in sorted(_FORMATS.values(), key=lambda f: f.priority):
        if fmt.detect(root):
            return fmt
    raise PixelsegError(
        f"{root}: no known dataset layout found (formats: {', '.join(sorted(_FORMATS))}); "
        "the mask-folder layout is images/ and masks/ with matching file names"
    )


def split_names(split: str) -> list[str]:
    """The splits a split name stands for: ``train+val`` is train and val read as one."""
    return [s.strip() for s in split.split("+")]


def open_split(root: str | Path, split: str, format: str = "auto") -> SegmentationSource:
    """Open one split (train, val, test) of the dataset at ``root``, or several joined by
    ``+`` (``train+val``) as one source."""
    fmt = resolve_format(root, format)
    available = fmt.splits(Path(root))
    names = split_names(split)
    for name in names:
        if name not in available:
            raise PixelsegError(
                f"{root}: split {name!r} not found "
                f"({fmt.name} layout has: {', '.join(available) or 'none'})"
            )
    if len(set(names)) != len(names):
        raise PixelsegError(f"{root}: split {split!r} names the same split twice")
    parts = [fmt.open(Path(root), name) for name in names]
    return parts[0] if len(parts) == 1 else ConcatSource(parts)
