"""The server's micro-batcher: one thread runs the model on the images of requests that arrive
together, in batches of one size (``data/size_batches``), as offline prediction does."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ...data.size_batches import same_size_batches
from ..predict import Predictor


class BatcherStopped(Exception):
    """The model thread has stopped: no request can be answered until a restart."""


@dataclass(frozen=True)
class _Job:
    """One request's image and the future its probabilities go to."""

    image: np.ndarray
    future: Future

    def size(self) -> tuple[int, ...]:
        return self.image.shape


class MicroBatcher:
    """One thread runs the model; requests hand it images and wait for their probabilities.
    It takes what is queued (up to ``batch_size`` images of one size, ``max_pixels`` in all)
    as one batch, waiting at most ``wait_ms`` after a batch's first image for more. A request
    that gave up before its turn is skipped; when a batch fails, its images are tried one by
    one, so that one bad image fails alone."""

    def __init__(
        self, predictor: Predictor, batch_size: int, wait_ms: float, max_pixels: int = 0
    ) -> None:
        self.predictor = predictor
        self.batch_size = max(1, batch_size)
        self.wait = wait_ms / 1000
        self.max_pixels = max_pixels
        self.jobs: queue.Queue = queue.Queue()
        self.failure: BaseException | None = None
        self.lock = threading.Lock()
        # Taken from the queue and not yet answered (the batcher's thread only): on a failure
        # of the thread, each of them is told, wherever the batching holds it.
        self._unanswered: set[Future] = set()
        self._next: _Job | None = None  # taken while waiting for more, not yet batched
        self._batch_end = 0.0  # when the batch being filled stops waiting for more
        self.thread = threading.Thread(target=self._run, daemon=True, name="pixelseg-batcher")
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.failure is None and self.thread.is_alive()

    def submit(self, image: np.ndarray) -> Future:
        future: Future = Future()
        with self.lock:
            if not self.alive:
                raise BatcherStopped(repr(self.failure))
            self.jobs.put(_Job(image, future))
        return future

    def _take(self, timeout: float | None = None) -> _Job:
        """The next job whose request still waits (queue.Empty when none comes in time)."""
        while True:
            job = self.jobs.get(timeout=timeout)
            if job.future.set_running_or_notify_cancel():  # False: cancelled, its client is gone
                self._unanswered.add(job.future)
                return job

    def _arrivals(self) -> Iterator[_Job]:
        """Jobs as they come: the one taken while waiting for more first, then the queue's."""
        while True:
            if self._next is not None:
                job, self._next = self._next, None
                yield job
            else:
                yield self._take()

    def _more_within_wait(self, batch: list[_Job]) -> bool:
        """Whether another job arrives before the batch stops waiting (``wait_ms`` after its
        first image); the one that does is kept for the batching to place."""
        if len(batch) == 1:
            self._batch_end = time.monotonic() + self.wait
        try:
            self._next = self._take(timeout=max(0.0, self._batch_end - time.monotonic()))
        except queue.Empty:
            return False
        return True

    def _run(self) -> None:
        batches = same_size_batches(
            self._arrivals(),
            _Job.size,
            max_items=self.batch_size,
            max_pixels=self.max_pixels,
            more_ready=self._more_within_wait,
        )
        try:
            for batch in batches:
                self._run_batch(batch)
        except BaseException as e:  # the thread ends: say so to every request, and to /health
            with self.lock:
                self.failure = e
                while not self.jobs.empty():
                    job = self.jobs.get_nowait()
                    if job.future.set_running_or_notify_cancel():
                        self._unanswered.add(job.future)
            for future in self._unanswered:
                if not future.done():
                    future.set_exception(BatcherStopped(repr(e)))
            # Not re-raised: the failure is kept, and /health and every request report it.

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            probs = self.predictor.predict_proba_batch([job.image for job in batch])
        except Exception as e:  # a model failure fails its requests, not the server
            if len(batch) > 1:  # which one? each alone
                for job in batch:
                    self._run_batch([job])
            else:
                batch[0].future.set_exception(e)
                self._unanswered.discard(batch[0].future)
            return
        for job, p in zip(batch, probs):
            job.future.set_result(p)
            self._unanswered.discard(job.future)
