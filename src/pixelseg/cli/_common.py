"""Argument helpers shared by the command modules."""

from __future__ import annotations

from ..errors import PixelsegError


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """'360x480' -> (360, 480) (height x width); '128' -> (128, 128)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise PixelsegError(f"{what} {text}: expected HxW, e.g. 360x480") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise PixelsegError(f"{what} {text}: expected HxW with positive sizes, e.g. 360x480")
    return parts[0], parts[1]
