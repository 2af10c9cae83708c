"""What one ``pixelseg serve`` process accepts; apart from the server so that the command line
can show the defaults without importing FastAPI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeLimits:
    """What one server accepts. The defaults fit a 2-core machine with a few GB free."""

    max_bytes: int = 20 * 1024 * 1024  # upload size
    max_pixels: int = 25_000_000  # width x height, checked from the header before decoding
    max_active: int = 4  # requests being decoded, predicted or encoded at once
    max_waiting: int = 16  # requests queued behind them; more get 503 at once
    wait_seconds: float = 30.0  # a queued request gets 503 after this long
    batch_size: int = 4  # images per forward pass when requests arrive together
    batch_wait_ms: float = 2.0  # how long the batcher waits for a second image
