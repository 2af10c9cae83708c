"""The journal of batch prediction: what each part has done, so that a killed job resumes.

Each part appends one JSON line per finished image to its own log (``predictions.jsonl``, or
``predictions.part-K-of-N.jsonl``), after the image's files were written. A re-run reads the
log and skips what it lists, so a killed job loses at most the images in flight, and every
image is recorded once. A torn last line (a kill in mid-write) is dropped. Images that failed
are logged with an ``error`` and tried again on a re-run (the last record of an image is the
one that counts). A lock on the log keeps a second process off a part that is running, and
the folder's manifest keeps out a second model or other options.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PixelsegError
from ..files import atomic_write_text

MANIFEST = "predict-manifest.json"


def check_manifest(out_dir: Path, model: dict, options: dict) -> None:
    """Refuse to mix outputs of two models or two sets of options in one folder: ``model`` is
    the predictor's ``identity()``, ``options`` those that change the outputs."""
    manifest = {"model": model, "options": options}
    path = out_dir / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if old != manifest:
            raise PixelsegError(
                f"{out_dir}: holds predictions of another model or other options ({path}); "
                "choose another --out, or delete that folder to start again"
            )
        return
    atomic_write_text(path, json.dumps(manifest, indent=1))


def lock_exclusively(file, path: Path) -> None:
    """An exclusive lock on an open file for as long as it stays open, or a one-line error."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one process per part is then the user's care
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PixelsegError(
            f"{path}: another process is running this part into the same --out; wait for it "
            "to finish, or give this one another --out or --part-id"
        ) from None


class PredictionLog:
    """One part's JSON-lines log: what is done, and an append that survives a kill.

    Opening it takes an exclusive lock on the file (``flock``; released when the process
    ends, however it ends), so a second process started on the same part is refused instead
    of writing the same outputs and log lines twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        self.failed = 0
        self._file = open(path, "a", encoding="utf-8")
        try:
            lock_exclusively(self._file, path)
            self._read()
        except BaseException:
            self._file.close()
            raise
        self._lock = threading.Lock()
        self._last_sync = time.monotonic()

    def _read(self) -> None:
        data = self.path.read_bytes()
        good = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
        if len(good) != len(data):  # a torn last line from a kill: drop it
            os.ftruncate(self._file.fileno(), len(good))
        for line in good.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise PixelsegError(
                    f"{self.path}: damaged line in the prediction log; remove it to resume"
                ) from None
            if "error" in record:
                self.done.discard(record["image"])
            else:
                self.done.add(record["image"])

    def append(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if time.monotonic() - self._last_sync > 1.0:  # bound what a power loss can take
                os.fsync(self._file.fileno())
                self._last_sync = time.monotonic()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


@dataclass
class BatchSummary:
    out_dir: Path
    log: Path
    processed: int = 0  # images segmented by this call
    skipped: int = 0  # already in the log
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image, error)
    seconds: float = 0.0
    records: list[dict] = field(default_factory=list)  # kept only when asked

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0


class Journal:
    """Where each image's outcome goes: a line in the part's log, a count in the summary and a
    step of the progress bar (``bar``: anything with ``update(n)``).

    ``succeeded`` and ``failed`` are called by the thread that collects the written outputs;
    ``skipped`` by the listing, in the decoder threads, one at a time."""

    def __init__(self, log: PredictionLog, summary: BatchSummary, bar, keep_records: bool) -> None:
        self.log, self.summary, self.bar, self.keep_records = log, summary, bar, keep_records

    def succeeded(self, entry: str, outputs: dict) -> None:
        record = {"image": entry, **outputs}
        self.log.append(record)
        self.summary.processed += 1
        if self.keep_records:
            self.summary.records.append(record)
        self.bar.update(1)

    def failed(self, entry: str, error: str) -> None:
        self.log.append({"image": entry, "error": error})
        self.summary.failed.append((entry, error))
        self.bar.update(1)

    def skipped(self, entry: str) -> None:
        self.summary.skipped += 1
        self.bar.update(1)
