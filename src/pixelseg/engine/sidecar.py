"""A checkpoint's sidecar: the JSON record of one checkpoint (``TAG.json``), read and checked.

It names the model (``create_model``'s arguments), the classes, normalisation, epoch, metrics
and optimizer scalars, and under ``files`` the data files that hold the tensors, each with its
size and sha256. A ``files`` record must name plain files in the sidecar's folder; anything
else (a path, ``..``, a device) is refused unread. Sidecars without ``files`` (pixelseg before
0.2) name ``TAG.safetensors`` and ``TAG.optim.safetensors`` beside them (``data_file``).
Writing and loading the data files is ``checkpoint.py``'s.

``read_sidecar`` returns a ``Sidecar``; its ``to_dict()`` is the JSON on disk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import PixelsegError
from ..runs import RunFolder

MODEL_KEYS = ("name", "num_classes", "in_channels", "knobs")
# What a ``last`` checkpoint needs for --resume, besides the model.
RESUME_KEYS = ("epoch", "best_miou", "best_epoch", "optimizer")


@dataclass(frozen=True)
class DataFile:
    """One data file of a checkpoint, as its sidecar records it (loading checks both)."""

    file: str  # its name, in the sidecar's folder
    bytes: int
    sha256: str

    def to_dict(self) -> dict:
        return {"file": self.file, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict) -> DataFile:
        return cls(file=d["file"], bytes=d.get("bytes"), sha256=d.get("sha256"))


@dataclass(frozen=True)
class Sidecar:
    """A checkpoint's sidecar, read from ``path`` (``read_sidecar``).

    ``to_dict()`` is its JSON form, the file on disk: keys the sidecar did not have stay out
    of it, those it had keep their order, and keys this version does not know are kept in
    ``extra``, so an old or newer sidecar round-trips unchanged. ``from_dict(d, path)`` reads
    that form (a sidecar without ``files``, from before 0.2, names its data files by its tag).

    >>> s = Sidecar.from_dict({"model": {"name": "unet"}, "epoch": 3, "resize": None}, "b.json")
    >>> s.epoch, s.resize, s.to_dict()
    (3, None, {'model': {'name': 'unet'}, 'epoch': 3, 'resize': None})
    """

    model: dict  # name, num_classes, in_channels, knobs (``create_model``'s arguments)
    path: Path | None = None  # where it was read; not part of the JSON form
    classes: dict | None = None  # ``ClassTable.to_dict()``
    normalization: dict | None = None  # ``Normalizer.to_dict()``
    pretrained: dict | None = None  # the encoder's starting weights: source, file, sha256
    resize: list[int] | None = None  # the model's input size (data.resize), if any
    epoch: int | None = None
    best_miou: float | None = None
    best_epoch: int | None = None
    metrics: dict | None = None  # the epoch's metrics row (without "epoch")
    lr_scale: float | None = None
    ema_updates: int | None = None
    weights: str | None = None  # "raw" or "ema": which weights the file holds
    planned_epochs: int | None = None
    stop_reason: str | None = None
    optimizer: dict | None = None  # param_groups and non-tensor state, for resuming
    files: dict[str, DataFile] | None = None  # "weights", "optimizer"
    commit: dict | None = None  # last.json: the best and ema sidecars (JSON) of its commit
    extra: dict = field(default_factory=dict)  # keys this version does not know
    keys: tuple[str, ...] = field(default=(), repr=False, compare=False)  # as read, in order

    def to_dict(self) -> dict:
        known = {}
        for f in fields(self):
            if f.name in ("path", "extra", "keys"):
                continue
            value = getattr(self, f.name)
            if f.name == "files" and value is not None:
                value = {role: record.to_dict() for role, record in value.items()}
            if value is not None or f.name in self.keys:
                known[f.name] = value
        out = {k: known[k] if k in known else self.extra[k] for k in self.keys}
        out.update({k: v for k, v in known.items() if k not in out})
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, d: dict, path: str | Path | None = None) -> Sidecar:
        names = {f.name for f in fields(cls)} - {"path", "extra", "keys"}
        known = {k: v for k, v in d.items() if k in names}
        if known.get("files") is not None:
            known["files"] = {role: DataFile.from_dict(r) for role, r in known["files"].items()}
        return cls(
            **known,
            path=Path(path) if path is not None else None,
            extra={k: v for k, v in d.items() if k not in names},
            keys=tuple(d),
        )

    def has(self, key: str) -> bool:
        """Whether the sidecar as read had ``key``."""
        return key in self.keys or getattr(self, key, None) is not None


def _missing_keys(meta: dict, keys: tuple[str, ...]) -> list[str]:
    missing = [k for k in keys if k not in meta]
    model = meta.get("model")
    if not isinstance(model, dict):
        return ["model", *missing]
    return [f"model.{k}" for k in MODEL_KEYS if k not in model] + missing


def read_sidecar(path: str | Path, require: tuple[str, ...] = ()) -> Sidecar:
    """A checkpoint's sidecar (a run folder: its best checkpoint), its ``path`` where it was
    read. Besides the model's keys, ``require`` names keys it must have."""
    path = Path(path)
    if path.is_dir():  # a run folder: its best checkpoint
        path = RunFolder(path).best
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise PixelsegError(
            f"{path}: checkpoint not found (expected a run folder or a checkpoint .json)"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PixelsegError(f"{path}: damaged checkpoint sidecar ({e})") from None
    if not isinstance(meta, dict):
        raise PixelsegError(f"{path}: damaged checkpoint sidecar (not a JSON object)")
    missing = _missing_keys(meta, require)
    if missing:
        raise PixelsegError(
            f"{path}: checkpoint sidecar lacks {', '.join(missing)}; it is damaged or not a "
            "pixelseg checkpoint"
        )
    problem = _files_problem(meta.get("files"))
    if problem:
        raise PixelsegError(f"{path}: damaged checkpoint sidecar ({problem})")
    return Sidecar.from_dict(meta, path)


def _files_problem(files) -> str | None:
    """What is wrong with a sidecar's ``files`` record, if anything: each data file must be a
    plain name in the sidecar's own folder (never a path elsewhere or ``..``), with
    its size and sha256."""
    if files is None:
        return None
    if not isinstance(files, dict):
        return "files is not an object"
    for role, record in files.items():
        if not isinstance(record, dict):
            return f"files.{role} is not an object"
        name, size, digest = record.get("file"), record.get("bytes"), record.get("sha256")
        plain = isinstance(name, str) and name not in ("", ".", "..")
        if not plain or Path(name).name != name or "\\" in name or "\0" in name:
            return f"files.{role}.file {name!r} is not a file name in the sidecar's folder"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return f"files.{role}.bytes {size!r} is not a size"
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return f"files.{role}.sha256 {digest!r} is not a sha256"
    return None


def data_file(meta: Sidecar, role: str = "weights") -> Path:
    """Where a checkpoint's ``weights`` or ``optimizer`` file is."""
    record = (meta.files or {}).get(role)
    if record is not None:
        return meta.path.parent / record.file
    return meta.path.with_suffix(".safetensors" if role == "weights" else ".optim.safetensors")
