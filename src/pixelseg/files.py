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
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# A new file only: never one (or the target of a symlink) that is already at the name.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY


def atomic_write_bytes(
    path: str | Path, data: bytes, *, fsync: bool = False, writer: str | None = None
) -> None:
    """Write to a temporary file in the same folder, then rename into place.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW``: a file or symlink planted at
    its name is never written through, and the rename replaces a symlink at ``path`` itself,
    not its target. On any failure the temporary file is removed. The final file's mode
    follows the umask, as a plain ``open()`` would make it (mkstemp's 0600 hides outputs from
    the group on shared storage). ``fsync`` flushes the data to disk before the rename, for
    files that must survive a power loss (``fsync_folder`` afterwards makes the rename itself
    durable).

    ``writer``: a name only one writer uses at a time (a batch part, which holds its log's
    lock). The temporary name is then ``.NAME.WRITER.tmp``: one a killed run of the same
    writer left behind is removed and the write retried, instead of staying forever, and two
    writers never share one. Without it each write takes a fresh random name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(100):
        suffix = writer if writer is not None else secrets.token_hex(4)
        tmp = path.parent / f".{path.name}.{suffix}.tmp"
        try:
            fd = os.open(tmp, _CREATE, 0o666)  # 0o666 & ~umask, like open(path, "wb")
            break
        except FileExistsError:
            if writer is None:
                continue
            if attempt:
                raise
            tmp.unlink()  # a leftover of this writer's killed run (or a planted link)
    else:
        raise FileExistsError(f"{path}: no free temporary name beside it")
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
    path: str | Path, text: str, *, fsync: bool = False, writer: str | None = None
) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync, writer=writer)


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
