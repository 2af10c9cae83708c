"""The check ``pixelseg train`` runs before training starts: the full inspection of
``inspect.py``, the very one ``pixelseg check-data`` reports, so the two never disagree.

A problem stops the run with one line naming the file, or, with ``skip_bad``, the bad items
are dropped and every problem is returned for the run's ``skipped.txt``. What the inspection
learns about each file is cached (``file_facts.py``): a second start on unchanged files only
stats them.
"""

from __future__ import annotations

from ..errors import PixelsegError
from .inspect import inspect_split
from .source import SegmentationSource


def preflight(
    sources: list[SegmentationSource], skip_bad: bool = False, progress: bool = True
) -> list[tuple[str, str]]:
    """Inspect every split; drop bad items when ``skip_bad``. Returns (file, problem) pairs."""
    skipped: list[tuple[str, str]] = []
    for source in sources:
        split = inspect_split(source, "full", progress=progress)
        problems = split.problems
        if problems and not skip_bad:
            more = (
                f" (and {len(problems) - 1} more problems; see pixelseg check-data)"
                if len(problems) > 1
                else ""
            )
            path, msg = problems[0]
            raise PixelsegError(f"{path}: {msg}{more}")
        if not problems:
            continue
        skipped += [(str(path), f"{path}: {msg}") for path, msg in split.layout]
        bad = [r for r in split.items if r.problems]
        skipped += [(str(r.item.image), "; ".join(f"{p}: {m}" for p, m in r.problems)) for r in bad]
        dropped = {id(r.item) for r in bad}
        source.items = [it for it in source.items if id(it) not in dropped]
        if not source.items:
            raise PixelsegError(f"{source.root}: every {source.split} sample is bad")
    return skipped
