"""The pipeline of batch prediction: read, predict, write, overlapped.

Decoder threads read images ahead into a bounded queue (``ReadAhead``); the main thread
batches images of one size for the forward pass (``same_size_batches``); writer threads
encode and write the outputs. PIL, zlib, numpy and torch release the GIL in their heavy parts,
so threads overlap well. Each output is written under a temporary name of its part, fsynced,
renamed into place, and its folder fsynced, before the journal's line marks the image done. A
write error fails that image, except those that would fail every image (``STOPS_THE_JOB``).
"""

from __future__ import annotations

import errno
import json
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.imageio import read_image
from ..data.size_batches import same_size_batches
from ..errors import PixelsegError
from .batch_journal import Journal
from .batch_listing import Job
from .outputs import ImagePrediction, OutputPaths, write_outputs
from .predict import Predictor


@dataclass
class PredictOptions:
    """How each image is segmented and what is written for it."""

    tta: bool = False
    scales: tuple[float, ...] = (1.0,)
    window: tuple[int, int] | None = None
    instances: bool = False
    min_area: int = 16
    uncertainty: bool = True
    batch_size: int = 4  # images of one size per forward pass
    workers: int = 2  # decoder threads, and as many writer threads

    def manifest(self) -> dict:
        """The options that change outputs (a resumed job must use the same ones)."""
        keys = ("tta", "scales", "window", "instances", "min_area", "uncertainty")
        d = {k: v for k, v in asdict(self).items() if k in keys}
        return json.loads(json.dumps(d))  # tuples -> lists, as read back from JSON


@dataclass(frozen=True)
class ReadImage:
    """A job after its file was read: the image, or why there is none."""

    job: Job
    image: np.ndarray | None = None
    error: str | None = None

    def size(self) -> tuple[int, ...] | None:
        return None if self.image is None else self.image.shape


@dataclass(frozen=True)
class Writing:
    """An image handed to the writer threads: its job, and the future of its outputs."""

    job: Job
    future: Future


class ReadAhead:
    """Decoder threads that read images ahead of the model into a bounded queue.

    Iterating yields a ``ReadImage`` per job (its image None when the file was refused or
    could not be read) in the order they finish; it ends when every job was read. ``close()`` stops
    the threads early (an interrupted job)."""

    _END = object()

    def __init__(self, jobs: Iterator[Job], threads: int, depth: int) -> None:
        self.jobs = jobs
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, depth))
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:  # one shared iterator: every job is read by one thread
                    job = next(self.jobs, self._END)
                if job is self._END:
                    return
                self._put(self._read(job))
        finally:
            self._put(self._END)  # always, or the consumer would wait for this thread forever

    @staticmethod
    def _read(job: Job) -> ReadImage:
        if job.error is not None:
            return ReadImage(job, error=job.error)
        try:
            return ReadImage(job, read_image(job.source))
        except PixelsegError as e:
            return ReadImage(job, error=str(e))
        except Exception as e:  # a bad path, a file system error: that image fails
            return ReadImage(job, error=f"{job.entry}: cannot read ({type(e).__name__}: {e})")

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                return self.queue.put(item, timeout=0.2)
            except queue.Full:
                continue

    def ready(self) -> bool:
        """Whether another image is already read."""
        return not self.queue.empty()

    def __iter__(self):
        ended = 0
        while ended < len(self.threads):
            item = self.queue.get()
            if item is self._END:
                ended += 1
            else:
                yield item

    def close(self) -> None:
        self.stop.set()


# Write errors that would fail every image after this one too: the job stops (one line naming
# the file) instead of logging the rest as failed; a re-run continues where it stopped. Any
# other write error (a name too long, a file where a folder should be, a folder without write
# permission) fails that image alone.
STOPS_THE_JOB = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


class PredictionPipeline:
    """Reads, predicts and writes the jobs of one part into ``out_dir``; every image's outcome
    goes to the ``journal``. ``writer``: the part's name in its temporary files."""

    def __init__(
        self,
        predictor: Predictor,
        options: PredictOptions,
        out_dir: Path,
        writer: str,
        journal: Journal,
    ) -> None:
        self.predictor, self.options = predictor, options
        self.out_dir, self.writer, self.journal = out_dir, writer, journal
        self.workers = max(1, options.workers)
        # Images whose outputs are being written, oldest first: held in memory until logged.
        self.in_flight: deque[Writing] = deque()

    def run(self, jobs: Iterator[Job]) -> None:
        batch_size = self.options.batch_size
        reader = ReadAhead(jobs, self.workers, depth=2 * batch_size)
        writers = ThreadPoolExecutor(self.workers, thread_name_prefix="pixelseg-write")
        batches = same_size_batches(
            reader, ReadImage.size, max_items=batch_size, more_ready=lambda _: reader.ready()
        )
        try:
            for batch in batches:
                if batch[0].image is None:  # refused or unreadable: logged, the job goes on
                    self.journal.failed(batch[0].job.entry, batch[0].error)
                    continue
                self._predict(batch, writers)
                # Log what is written; wait only when too many images are held in memory.
                while self.in_flight and (
                    self.in_flight[0].future.done()
                    or len(self.in_flight) > 2 * self.workers * batch_size
                ):
                    self._finish(self.in_flight.popleft())
            while self.in_flight:
                self._finish(self.in_flight.popleft())
        finally:
            reader.close()
            writers.shutdown(wait=True)
            for writing in self.in_flight:  # interrupted: log what did finish
                if writing.future.exception() is None:
                    self._finish(writing)

    def _predict(self, batch: list[ReadImage], writers: ThreadPoolExecutor) -> None:
        options = self.options
        probs = self.predictor.predict_proba_batch(
            [read.image for read in batch], options.tta, options.scales, options.window
        )
        for read, p in zip(batch, probs):
            pred = ImagePrediction(read.image, p, self.predictor.classes, options.min_area)
            future = writers.submit(
                write_outputs,
                pred,
                OutputPaths(self.out_dir / read.job.stem),
                options.uncertainty,
                options.instances,
                self.writer,
            )
            self.in_flight.append(Writing(read.job, future))

    def _finish(self, writing: Writing) -> None:
        job = writing.job
        try:
            outputs = writing.future.result()
        except OSError as e:
            where = e.filename or self.out_dir / job.stem
            error = f"{where}: cannot write the outputs of {job.entry} ({e.strerror or e})"
            if e.errno in STOPS_THE_JOB:
                raise PixelsegError(f"{error}; the job stopped, re-run to go on") from None
            return self.journal.failed(job.entry, error)
        self.journal.succeeded(job.entry, outputs)
