"""Prediction over many images: streamed from a list, sharded over machines, resumable, with
decoding and writing overlapped with the forward pass.

- Input: image paths given on the command line, or a list file of one path per line, read as
  a stream (a list of millions of lines is never held in memory).
- Sharding: image ``i`` of the list belongs to part ``i % num_parts``. Under torchrun each
  process is a part (rank of world size); ``--num-parts N --part-id K`` splits a list over an
  array job, and the two combine (N machines x R ranks = N*R parts).
- Resuming: each part appends one JSON line per finished image to its own log
  (``predictions.jsonl``, or ``predictions.part-K-of-N.jsonl``), after the image's files were
  written atomically. A re-run reads the log and skips what it lists, so a killed job loses
  at most the images in flight, and every image is recorded once. A torn last line (a kill in
  mid-write) is dropped. Images that failed to decode are logged with an ``error`` and tried
  again on a re-run (the last record of an image is the one that counts).
- Overlap: decoder threads read images ahead into a bounded queue; the main thread batches
  images of the same size for the forward pass; writer threads encode and write the outputs.
  PIL, zlib, numpy and torch release the GIL in their heavy parts, so threads overlap well.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

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


def mirrored_name(entry: str) -> str:
    """A list entry's output stem: its path without the suffix, folders kept, so that
    ``a/x.jpg`` and ``b/x.jpg`` do not collide. An absolute path loses its root; a path that
    climbs out with ``..`` is mirrored by its absolute form, so no output lands outside --out."""
    path = os.path.normpath(entry)
    if path == ".." or path.startswith(".." + os.sep):
        path = os.path.abspath(path)
    parts = PurePosixPath(path.replace(os.sep, "/")).parts
    parts = parts[1:] if parts and parts[0] == "/" else parts
    if not parts:
        raise PixelsegError(f"{entry!r}: not an image path")
    return str(PurePosixPath(*parts).with_suffix(""))


class PredictionLog:
    """One part's JSON-lines log: what is done, and an append that survives a kill."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        self.failed = 0
        if path.is_file():
            self._read()
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._last_sync = time.monotonic()

    def _read(self) -> None:
        data = self.path.read_bytes()
        good = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
        if len(good) != len(data):  # a torn last line from a kill: drop it
            with open(self.path, "r+b") as f:
                f.truncate(len(good))
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


class ReadAhead:
    """Decoder threads that read images ahead of the model into a bounded queue.

    Iterating yields ``(entry, image, error)`` (image None when the file could not be read) in
    the order they finish; it ends when every entry was read. ``close()`` stops the threads
    early (an interrupted job)."""

    _END = object()

    def __init__(self, entries: Iterator[str], resolve, threads: int, depth: int) -> None:
        self.entries, self.resolve = entries, resolve
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, depth))
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:  # one shared iterator: every entry is read by one thread
                    entry = next(self.entries, self._END)
                if entry is self._END:
                    return
                try:
                    item = (entry, read_image(self.resolve(entry)), None)
                except PixelsegError as e:
                    item = (entry, None, str(e))
                except Exception as e:  # a bad path, a file system error: that image fails
                    item = (entry, None, f"{entry}: cannot read ({type(e).__name__}: {e})")
                self._put(item)
        finally:
            self._put(self._END)  # always, or the consumer would wait for this thread forever

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
    """Group consecutive ``(entry, image, error)`` items into batches of at most
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


def predict_stream(
    predictor: Predictor,
    entries: Iterable[str],
    out_dir: str | Path,
    options: PredictOptions | None = None,
    shard: Shard | None = None,
    name_of=mirrored_name,
    resolve=Path,
    total: int | None = None,
    progress: bool = True,
    keep_records: bool = False,
) -> BatchSummary:
    """Segment every entry of this shard not yet in the log; returns counts and failures.

    ``name_of(entry)`` gives the output stem relative to ``out_dir``; ``resolve(entry)`` the
    file to read (e.g. relative to a root folder).
    """
    options = options or PredictOptions()
    shard = shard or Shard()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PixelsegError(f"{out_dir}: exists and is not a folder; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, predictor, options)
    log = PredictionLog(out_dir / shard.log_name())
    summary = BatchSummary(out_dir, log.path)
    bar_total = None if total is None else -(-max(total - shard.part_id, 0) // shard.num_parts)
    bar = tqdm(total=bar_total, desc="predict", unit="img", disable=not progress, leave=False)

    def todo() -> Iterator[str]:
        for entry in shard.take(entries):
            if entry in log.done:
                summary.skipped += 1
                bar.update(1)
            else:
                yield entry

    def finish(entry: str, future: Future) -> None:
        try:
            record = {"image": entry, **future.result()}
        except OSError as e:
            raise PixelsegError(
                f"{e.filename or out_dir}: cannot write the outputs of {entry} ({e.strerror})"
            ) from None
        log.append(record)
        summary.processed += 1
        if keep_records:
            summary.records.append(record)
        bar.update(1)

    workers = max(1, options.workers)
    reader = ReadAhead(todo(), resolve, workers, depth=2 * options.batch_size)
    writers = ThreadPoolExecutor(workers, thread_name_prefix="pixelseg-write")
    in_flight: list[tuple[str, Future]] = []  # oldest first
    t0 = time.perf_counter()
    try:
        for batch in same_size_batches(reader, options.batch_size):
            if batch[0][1] is None:  # unreadable: logged, the job goes on
                entry, _, error = batch[0]
                log.append({"image": entry, "error": error})
                summary.failed.append((entry, error))
                bar.update(1)
                continue
            probs = predictor.predict_proba_batch(
                [image for _, image, _ in batch], options.tta, options.scales, options.window
            )
            for (entry, image, _), p in zip(batch, probs):
                pred = ImagePrediction(image, p, predictor.classes, options.min_area)
                paths = OutputPaths(out_dir / name_of(entry))
                future = writers.submit(
                    write_outputs, pred, paths, options.uncertainty, options.instances
                )
                in_flight.append((entry, future))
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
        for entry, future in in_flight:  # interrupted: log what did finish
            if future.exception() is None:
                finish(entry, future)
        log.close()
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
