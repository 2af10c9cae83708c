"""Small file helpers every layer may use (they import nothing of pixelseg but its errors):
atomic writes, and reading a YAML file that must hold a mapping.

Outputs are written to a temporary name in the same folder and renamed into place, so a reader
(or a crash) never sees half a file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from .errors import PixelsegError

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def atomic_write_bytes(
    path: str | Path, data: bytes, *, fsync: bool = False, single_writer: bool = False
) -> None:
    """Write to a temporary file in the same folder, then rename into place.

    The final file's mode follows the umask, as a plain ``open()`` would make it (mkstemp's
    0600 hides outputs from the group on shared storage). ``fsync`` flushes the data to disk
    before the rename, for files that must survive a power loss (``fsync_folder`` afterwards
    makes the rename itself durable).

    ``single_writer``: only one process ever writes ``path`` (a batch job's per-image outputs:
    each image belongs to one part). The temporary name is then fixed, so the one a killed
    run left behind is overwritten and renamed by the run that redoes the image, instead of
    staying forever; otherwise each write takes a fresh random name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if single_writer:
        tmp = path.parent / f".{path.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o666)
    while not single_writer:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 & ~umask, like open(path, "wb"); O_EXCL: never write into another's file.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_folder(folder: str | Path) -> None:
    """Make renames and deletions in ``folder`` durable (a no-op where folders cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(
    path: str | Path, text: str, *, fsync: bool = False, single_writer: bool = False
) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync, single_writer=single_writer)


def read_yaml_mapping(path: str | Path, what: str, expected: str) -> dict:
    """A YAML file that must hold a mapping; a missing file, bad YAML or another shape is a
    one-line PixelsegError naming the file (``what``: "config file"; ``expected``: the shape)."""
    path = Path(path)
    if not path.is_file():
        raise PixelsegError(f"{path}: {what} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise PixelsegError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise PixelsegError(f"{path}: expected {expected}")
    return data


__all__ = ["atomic_write_bytes", "atomic_write_text", "fsync_folder", "read_yaml_mapping"]
