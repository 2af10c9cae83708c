"""Class tables from ``classes.txt`` (``name`` or ``name R G B`` a line) or ``classes.yaml``
(``names: [...]``, optional ``colours: [[R, G, B], ...]``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import PixelsegError
from .sample import ClassTable

CLASS_FILES = ("classes.yaml", "classes.yml", "classes.txt")


def find_classes_file(root: Path) -> Path | None:
    for name in CLASS_FILES:
        if (root / name).is_file():
            return root / name
    return None


def read_classes_file(path: Path) -> tuple[ClassTable, bool]:
    """Returns the table and whether colours were given explicitly."""
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise PixelsegError(f"{path}: not valid YAML ({e})") from None
        names = data.get("names") if isinstance(data, dict) else None
        if not isinstance(names, list) or not names:
            raise PixelsegError(f"{path}: needs a non-empty list 'names'")
        colours = data.get("colours") or data.get("colors") or []
        if colours and len(colours) != len(names):
            raise PixelsegError(f"{path}: {len(colours)} colours for {len(names)} names")
        return ClassTable([str(n) for n in names], [tuple(c) for c in colours]), bool(colours)
    names, colours = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) == 4:
            try:
                colours.append(tuple(int(v) for v in parts[1:]))
            except ValueError:
                raise PixelsegError(f"{path}:{lineno}: expected 'name R G B'") from None
        elif len(parts) != 1:
            raise PixelsegError(f"{path}:{lineno}: expected 'name' or 'name R G B'")
        names.append(parts[0])
    if not names:
        raise PixelsegError(f"{path}: no class names")
    if colours and len(colours) != len(names):
        raise PixelsegError(f"{path}: give a colour for every class or for none")
    return ClassTable(names, colours), bool(colours)
