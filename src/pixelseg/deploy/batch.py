"""Prediction over many images: streamed from a list, sharded over machines, resumable, with
decoding and writing overlapped with the forward pass.

- Input: image paths given on the command line, or a list file of one path per line, read as
  a stream (a list of millions of lines is never held in memory). Where a list entry is read
  and where its outputs go is ``ListLayout``'s rule: relative to a base folder (``--root``,
  else the list's folder), mirrored under the output folder, never outside it.
- Sharding: image ``i`` of the list belongs to part ``i % num_parts``. Under torchrun each
  process is a part (rank of world size); ``--num-parts N --part-id K`` splits a list over an
  array job, and the two combine (N machines x R ranks = N*R parts).
- Resuming: each part appends one JSON line per finished image to its own log
  (``predictions.jsonl``, or ``predictions.part-K-of-N.jsonl``), after the image's files were
  written atomically. A re-run reads the log and skips what it lists, so a killed job loses
  at most the images in flight, and every image is recorded once. A torn last line (a kill in
  mid-write) is dropped. Images that failed to decode are logged with an ``error`` and tried
  again on a re-run (the last record of an image is the one that counts). A lock on the log
  keeps a second process off a part that is running.
- Writing: each output is written under a temporary name of its part, fsynced, renamed into
  place, and its folder fsynced, before the log line that marks the image done. A write error
  fails that image (logged), except those that would fail every image (``STOPS_THE_JOB``).
- Overlap: decoder threads read images ahead into a bounded queue; the main thread batches
  images of the same size for the forward pass; writer threads encode and write the outputs.
  PIL, zlib, numpy and torch release the GIL in their heavy parts, so threads overlap well.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from tqdm import tqdm

from ..data.imageio import IMAGE_EXTENSIONS, read_image
from ..errors import PixelsegError
from ..files import atomic_write_text
from .outputs import ImagePrediction, OutputPaths, write_outputs
from .predict import Predictor

MANIFEST = "predict-manifest.json"


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


def _lock(file, path: Path) -> None:
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
            _lock(self._file, path)
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


def _check_manifest(out_dir: Path, predictor: Predictor, options: PredictOptions) -> None:
    """Refuse to mix outputs of two models or two sets of options in one folder."""
    manifest = {"model": predictor.identity(), "options": options.manifest()}
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


class Job(NamedTuple):
    """One entry of the list, located: the file to read and its output stem, or why it is
    refused before it is read."""

    entry: str
    source: Path | None = None
    stem: str | None = None
    error: str | None = None


class ReadAhead:
    """Decoder threads that read images ahead of the model into a bounded queue.

    Iterating yields ``(job, image, error)`` (image None when the file was refused or could
    not be read) in the order they finish; it ends when every job was read. ``close()`` stops
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
    def _read(job: Job) -> tuple:
        if job.error is not None:
            return job, None, job.error
        try:
            return job, read_image(job.source), None
        except PixelsegError as e:
            return job, None, str(e)
        except Exception as e:  # a bad path, a file system error: that image fails
            return job, None, f"{job.entry}: cannot read ({type(e).__name__}: {e})"

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


def same_size_batches(reader: ReadAhead, batch_size: int) -> Iterator[list]:
    """Group consecutive ``(job, image, error)`` items into batches of at most
    ``batch_size`` images of one size; a failed item comes through alone (image None). A batch
    is handed on as soon as nothing more is ready, so a slow disk never holds back the model."""
    batch: list = []
    for item in reader:
        if item[1] is None:
            yield [item]
            continue
        if batch and item[1].shape != batch[0][1].shape:
            yield batch
            batch = []
        batch.append(item)
        if len(batch) >= batch_size:
            yield batch
            batch = []
        elif not reader.ready():
            yield batch
            batch = []
    if batch:
        yield batch


# Write errors that would fail every image after this one too: the job stops (one line naming
# the file) instead of logging the rest as failed; a re-run continues where it stopped. Any
# other write error (a name too long, a file where a folder should be, a folder without write
# permission) fails that image alone.
STOPS_THE_JOB = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


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
    _check_manifest(out_dir, predictor, options)
    log = PredictionLog(out_dir / shard.log_name())
    summary = BatchSummary(out_dir, log.path)
    bar_total = None if total is None else -(-max(total - shard.part_id, 0) // shard.num_parts)
    bar = tqdm(total=bar_total, desc="predict", unit="img", disable=not progress, leave=False)
    stems: dict[str, str] = {}  # output stem -> the first entry of this part that has it

    def skip() -> None:
        summary.skipped += 1
        bar.update(1)

    def todo() -> Iterator[Job]:
        for entry in shard.take(entries):
            try:
                source, stem = locate(entry)
            except PixelsegError as e:
                yield Job(entry, error=str(e))
                continue
            first = stems.get(stem)
            if first is None:
                stems[stem] = entry
                if entry in log.done:
                    skip()
                else:
                    yield Job(entry, source, stem)
            elif first == entry or locate(first)[0] == source:  # a repeat: done once
                skip()
            else:
                yield Job(
                    entry,
                    error=f"{entry}: its outputs {stem}_* would overwrite those of {first}, "
                    "listed before it; rename one, or list them for separate --out folders",
                )

    def fail(entry: str, error: str) -> None:
        log.append({"image": entry, "error": error})
        summary.failed.append((entry, error))
        bar.update(1)

    def finish(job: Job, future: Future) -> None:
        try:
            record = {"image": job.entry, **future.result()}
        except OSError as e:
            where = e.filename or out_dir / job.stem
            error = f"{where}: cannot write the outputs of {job.entry} ({e.strerror or e})"
            if e.errno in STOPS_THE_JOB:
                raise PixelsegError(f"{error}; the job stopped, re-run to go on") from None
            return fail(job.entry, error)
        log.append(record)
        summary.processed += 1
        if keep_records:
            summary.records.append(record)
        bar.update(1)

    workers = max(1, options.workers)
    reader = ReadAhead(todo(), workers, depth=2 * options.batch_size)
    writers = ThreadPoolExecutor(workers, thread_name_prefix="pixelseg-write")
    in_flight: list[tuple[Job, Future]] = []  # oldest first
    t0 = time.perf_counter()
    try:
        for batch in same_size_batches(reader, options.batch_size):
            if batch[0][1] is None:  # refused or unreadable: logged, the job goes on
                job, _, error = batch[0]
                fail(job.entry, error)
                continue
            probs = predictor.predict_proba_batch(
                [image for _, image, _ in batch], options.tta, options.scales, options.window
            )
            for (job, image, _), p in zip(batch, probs):
                pred = ImagePrediction(image, p, predictor.classes, options.min_area)
                future = writers.submit(
                    write_outputs,
                    pred,
                    OutputPaths(out_dir / job.stem),
                    options.uncertainty,
                    options.instances,
                    shard.writer,
                )
                in_flight.append((job, future))
            # Log what is written; wait only when too many images are held in memory.
            while in_flight and (
                in_flight[0][1].done() or len(in_flight) > 2 * workers * options.batch_size
            ):
                finish(*in_flight.pop(0))
        while in_flight:
            finish(*in_flight.pop(0))
    finally:
        reader.close()
        writers.shutdown(wait=True)
        for job, future in in_flight:  # interrupted: log what did finish
            if future.exception() is None:
                finish(job, future)
        log.close()
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
