"""Listing for batch prediction: which entries of a list this part predicts, where each is
read and where its outputs go.

- ``Shard``: image ``i`` of the list belongs to part ``i % num_parts`` (torchrun ranks and
  ``--num-parts/--part-id`` combined).
- ``read_file_list`` streams a list file (never held in memory); ``expand_images`` and
  ``flat_names`` are the command line's images and their output names.
- ``ListLayout``: the one rule for where a ``--files`` entry is read and its outputs land.
- ``Listing``: the part's entries, located, as ``Job`` records; the finished ones (from the
  part's log) and repeats skipped, those that would collide refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..data.imageio import IMAGE_EXTENSIONS
from ..errors import PixelsegError


@dataclass(frozen=True)
class Shard:
    """Part ``part_id`` of ``num_parts``: the images whose list index is part_id mod num_parts."""

    part_id: int = 0
    num_parts: int = 1

    def __post_init__(self) -> None:
        if self.num_parts < 1 or not 0 <= self.part_id < self.num_parts:
            raise PixelsegError(
                f"--part-id {self.part_id} --num-parts {self.num_parts}: need 0 <= part-id < "
                "num-parts"
            )

    @classmethod
    def resolve(cls, num_parts: int = 1, part_id: int = 0, env=os.environ) -> Shard:
        """Combine ``--num-parts/--part-id`` with torchrun's RANK and WORLD_SIZE."""
        world, rank = int(env.get("WORLD_SIZE", 1)), int(env.get("RANK", 0))
        cls(part_id, num_parts)  # validate the user's numbers before combining them
        return cls(part_id * world + rank, num_parts * world)

    @property
    def writer(self) -> str:
        """The part's name in its temporary files (``atomic_write_bytes``'s ``writer``)."""
        return f"p{self.part_id}of{self.num_parts}"

    def log_name(self) -> str:
        if self.num_parts == 1:
            return "predictions.jsonl"
        return f"predictions.part-{self.part_id:05d}-of-{self.num_parts:05d}.jsonl"

    def share_of(self, total: int | None) -> int | None:
        """How many of a list of ``total`` entries are this part's (None: not known)."""
        if total is None:
            return None
        return -(-max(total - self.part_id, 0) // self.num_parts)

    def take(self, items: Iterable[str]) -> Iterator[str]:
        for i, item in enumerate(items):
            if i % self.num_parts == self.part_id:
                yield item


def _list_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PixelsegError(f"{path}: file list not found (expected a text file of paths)")
    return path


def read_file_list(path: str | Path) -> Iterator[str]:
    """Stream the paths of a list file: one per line; blank lines and ``#`` comments skipped."""
    path = _list_file(path)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def count_file_list(path: str | Path) -> int:
    """Lines of a list file, counted in binary chunks (no line objects): the progress total."""
    n = 0
    with open(_list_file(path), "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def expand_images(items: list[str]) -> list[str]:
    """Image files and folders (their images, sorted) as given on a command line."""
    paths: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(str(q) for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            paths.append(str(p))
        else:
            raise PixelsegError(f"{p}: no such image file or folder")
    if not paths:
        raise PixelsegError(f"{', '.join(items)}: no images found")
    return paths


def flat_names(paths: list[str]) -> dict[str, str]:
    """Command-line images write ``<stem>_*`` straight into the output folder; two images with
    one stem would overwrite each other's outputs, so that is an error."""
    seen: dict[str, str] = {}
    for p in paths:
        stem = Path(p).stem
        if stem in seen and seen[stem] != p:
            raise PixelsegError(
                f"{p}: has the same name as {seen[stem]}; their outputs would collide "
                "(rename one, or list them with --files, which keeps their folders)"
            )
        seen[stem] = p
    return {p: Path(p).stem for p in paths}


class ListLayout:
    """Where a ``--files`` entry is read and where its outputs go: the one rule.

    The base folder is ``--root`` when given, else the folder of the list file. A relative
    entry is read from ``base/entry``; an absolute one as it is. Its outputs go to
    ``OUT/<the entry's path relative to base, suffix dropped>_mask.png`` and friends, so
    ``a/x.jpg`` and ``b/x.jpg`` do not collide. An entry whose normalised path is not inside
    the base (absolute elsewhere, ``//host/...``, ``..`` climbing out) is refused: its outputs
    would have to land outside OUT. Paths are compared as text, after ``..`` and ``.`` are
    folded, without following symlinks: a symlink inside the base that points elsewhere is
    read, and its outputs still land inside OUT.

    >>> ListLayout("/data").locate("a/x.jpg")
    (PosixPath('/data/a/x.jpg'), 'a/x')
    """

    def __init__(self, base: str | Path) -> None:
        self.base = os.path.normpath(os.path.abspath(base))
        self._prefix = self.base if self.base.endswith(os.sep) else self.base + os.sep

    def locate(self, entry: str) -> tuple[Path, str]:
        """(the file to read, the output stem relative to OUT); a PixelsegError naming the
        entry when it is outside the base."""
        path = os.path.normpath(os.path.join(self.base, entry))
        if path == self.base:
            raise PixelsegError(f"{entry}: not an image path (the base folder itself)")
        if path.startswith("//") or not path.startswith(self._prefix):
            raise PixelsegError(
                f"{entry}: outside {self.base}, the folder list entries are read from and "
                "mirrored under --out; pass --root a folder that holds it"
            )
        folder, name = os.path.split(path[len(self._prefix) :])
        stem = os.path.splitext(name)[0]
        if stem in ("", ".", ".."):
            raise PixelsegError(f"{entry}: not an image path")
        return Path(path), PurePosixPath(*folder.split(os.sep), stem).as_posix()


@dataclass(frozen=True)
class Job:
    """One entry of the list, located: the file to read and its output stem (relative to the
    output folder), or why it is refused before it is read."""

    entry: str
    source: Path | None = None
    stem: str | None = None
    error: str | None = None


class Listing:
    """The entries of one part to predict, as ``Job`` records, in list order.

    ``locate(entry)`` gives the file to read and its output stem, or raises a PixelsegError
    that refuses that entry alone. An entry in ``done`` (the part's log) is skipped, and so is
    a repeat (the same file again); an entry whose output stem is that of an earlier entry
    (``a/x.png``, ``a/x.jpg``) is refused, naming the earlier one. Each skip is reported to
    ``on_skip``. The map of the part's stems stays in memory, as the log's set of finished
    images does: tens of bytes per image. Two parts are not compared (they need no
    coordination).
    """

    def __init__(
        self,
        shard: Shard,
        locate: Callable[[str], tuple[Path, str]],
        done: Container[str],
        on_skip: Callable[[str], None],
    ) -> None:
        self.shard, self.locate, self.done, self.on_skip = shard, locate, done, on_skip
        self.stems: dict[str, str] = {}  # output stem -> the first entry of this part with it

    def jobs(self, entries: Iterable[str]) -> Iterator[Job]:
        for entry in self.shard.take(entries):
            try:
                source, stem = self.locate(entry)
            except PixelsegError as e:
                yield Job(entry, error=str(e))
                continue
            first = self.stems.get(stem)
            if first is None:
                self.stems[stem] = entry
                if entry in self.done:
                    self.on_skip(entry)
                else:
                    yield Job(entry, source, stem)
            elif first == entry or self.locate(first)[0] == source:  # a repeat: done once
                self.on_skip(entry)
            else:
                yield Job(
                    entry,
                    error=f"{entry}: its outputs {stem}_* would overwrite those of {first}, "
                    "listed before it; rename one, or list them for separate --out folders",
                )
