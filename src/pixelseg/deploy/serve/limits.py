"""What one ``pixelseg serve`` process accepts; apart from the server so that the command line
can show the defaults without importing FastAPI. How they are enforced: ``admission.py``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeLimits:
    """What one server accepts. The defaults fit a 2-core machine with a few GB free: with them
    the requests being processed hold at most ``max_memory_mb`` between them, by estimate
    (``work.estimate_bytes``), on top of the model itself."""

    max_bytes: int = 20 * 1024 * 1024  # upload size
    max_pixels: int = 25_000_000  # width x height, checked from the header before decoding
    max_active: int = 4  # requests reading their upload, decoded, predicted or encoded at once
    max_waiting: int = 16  # requests queued behind them; more get 503 at once
    wait_seconds: float = 30.0  # a queued request gets 503 after this long
    batch_size: int = 4  # images per forward pass when requests arrive together
    batch_wait_ms: float = 2.0  # how long the batcher waits for a second image
    # The estimated memory of the requests being processed, together; one that cannot fit
    # alone gets 413, the others wait for room.
    max_memory_mb: int = 2048
    # Images with more pixels go through the model scaled down to this many (a model trained
    # with data.resize always sees that size); the outputs are at the image's own size. Also
    # the most pixels one forward pass takes when requests are batched.
    max_model_pixels: int = 2_000_000
    compute_seconds: float = 60.0  # a request not answered this long after admission gets 504
    upload_seconds: float = 30.0  # an admitted request's upload must arrive within this: 408
    max_connections: int = 64  # open connections and requests; more get 503 (uvicorn)
    keep_alive_seconds: float = 5.0  # an idle keep-alive connection is closed after this
