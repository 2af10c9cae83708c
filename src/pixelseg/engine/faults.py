"""Crash injection for the crash-consistency test (tests/engine/test_crash_consistency.py).

Every step of a run's file writes (checkpoint files, sidecars, the metrics row, the clean-up of
old files) passes a crash point. With ``PIXELSEG_CRASH_AT=N`` in the environment the process
ends at the Nth one with ``os._exit(137)``, as kill -9 would leave it: no clean-up, no atexit,
no flushing; a crash point given a ``torn`` callback first leaves a half-written file behind
(the state of a kill in the middle of that write). Unset, a crash point is one dict lookup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..files import atomic_write_bytes

ENV = "PIXELSEG_CRASH_AT"
_passed = 0


def reset() -> None:
    """Count crash points from zero again (a forked test child)."""
    global _passed
    _passed = 0


def crash_point(torn: Callable[[], None] | None = None) -> None:
    global _passed
    at = os.environ.get(ENV)
    if not at:
        return
    _passed += 1
    if _passed == int(at):
        if torn is not None:
            torn()
        os._exit(137)


def write_file(path: Path, data: bytes) -> None:
    """``atomic_write_bytes`` (data flushed to disk) with a crash point inside the write and
    one after it."""

    def torn() -> None:  # what a kill during the write leaves: half a temporary file
        (path.parent / f".{path.name}.killed.tmp").write_bytes(data[: len(data) // 2])

    crash_point(torn)
    atomic_write_bytes(path, data, fsync=True)
    crash_point()
