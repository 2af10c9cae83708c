"""Prediction over many images: streamed from a list, sharded over machines, resumable, with
decoding and writing overlapped with the forward pass. ``predict_stream`` composes three
parts:

- listing (``batch_listing``): which entries are this part's, where each is read and where
  its outputs go. Input: image paths given on the command line, or a list file of one path per
  line, read as a stream (a list of millions of lines is never held in memory). Sharding:
  image ``i`` of the list belongs to part ``i % num_parts``; under torchrun each process is a
  part (rank of world size); ``--num-parts N --part-id K`` splits a list over an array job,
  and the two combine (N machines x R ranks = N*R parts).
- journal (``batch_journal``): each part's log of finished images, its lock and the folder's
  manifest, so that a killed job resumes where it stopped and records every image once.
- pipeline (``batch_pipeline``): decoder threads read ahead, the model runs batches of one
  size, writer threads write each image's outputs atomically before the journal marks it done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

from ..errors import PixelsegError
from .batch_journal import BatchSummary, Journal, PredictionLog, check_manifest
from .batch_listing import Listing, ListLayout, Shard
from .batch_pipeline import PredictionPipeline, PredictOptions
from .predict import Predictor


def predict_stream(
    predictor: Predictor,
    entries: Iterable[str],
    out_dir: str | Path,
    options: PredictOptions | None = None,
    shard: Shard | None = None,
    locate: Callable[[str], tuple[Path, str]] | None = None,
    total: int | None = None,
    progress: bool = True,
    keep_records: bool = False,
) -> BatchSummary:
    """Segment every entry of this shard not yet in the log; returns counts and failures.

    ``locate(entry)`` gives the file to read and its output stem relative to ``out_dir``, or
    raises a PixelsegError that fails that entry alone (default: ``ListLayout(".").locate``,
    entries relative to the current folder). Within the part an entry is predicted once: a
    repeat (the same file again) is skipped, and an entry whose output stem is that of an
    earlier entry (``a/x.png``, ``a/x.jpg``) is refused, logged as failed naming the earlier
    one. That takes a map of the part's stems in memory, as the log's set of finished images
    does: tens of bytes per image. Two parts are not compared (they need no coordination).
    Only one process at a time may run a part (a lock on its log).
    """
    options = options or PredictOptions()
    shard = shard or Shard()
    locate = locate or ListLayout(".").locate
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PixelsegError(f"{out_dir}: exists and is not a folder; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    check_manifest(out_dir, predictor.identity(), options.manifest())
    log = PredictionLog(out_dir / shard.log_name())
    summary = BatchSummary(out_dir, log.path)
    bar = tqdm(
        total=shard.share_of(total), desc="predict", unit="img", disable=not progress, leave=False
    )
    journal = Journal(log, summary, bar, keep_records)
    listing = Listing(shard, locate, done=log.done, on_skip=journal.skipped)
    pipeline = PredictionPipeline(predictor, options, out_dir, shard.writer, journal)
    t0 = time.perf_counter()
    try:
        pipeline.run(listing.jobs(entries))
    finally:
        log.close()
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
