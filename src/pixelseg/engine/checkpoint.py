"""Checkpoints: weights in safetensors plus a JSON sidecar; loading runs no pickled code.

A checkpoint ``TAG`` in a folder is its sidecar ``TAG.json`` (model name and knobs, classes,
normalisation, epoch, metrics, optimizer scalars) and the data files it names under ``files``:
the model weights and, for resuming, the optimizer tensors, each with its size and sha256,
which loading checks. Data files get names of their own (``last-e0007-1a2b3c.safetensors``)
and are never rewritten: a new checkpoint writes new files, then replaces the sidecar
atomically. A crash at any instant therefore leaves the previous sidecar naming the previous,
complete files; files no sidecar names are removed later (``prune_checkpoint_files``).
Sidecars without ``files`` (pixelseg before 0.2) name ``TAG.safetensors`` and
``TAG.optim.safetensors`` beside them, and still load: only those conventional files beside
the sidecar are read (regular files only), without a size or sha256 check, since those
versions recorded none (the safetensors header is still parsed strictly and every tensor
checked against the model). A ``files`` record must name plain files in the sidecar's folder,
with their size and sha256; anything else (a path, ``..``, a device) is refused unread.

``read_sidecar`` returns a ``Sidecar``; its ``to_dict()`` is the JSON on disk.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from ..errors import PixelsegError
from ..files import fsync_folder
from ..models import create_model
from ..runs import RunFolder
from .device import memory_format
from .faults import crash_point, write_file

MODEL_KEYS = ("name", "num_classes", "in_channels", "knobs")
# What a ``last`` checkpoint needs for --resume, besides the model.
RESUME_KEYS = ("epoch", "best_miou", "best_epoch", "optimizer")
_DATA_FILE = re.compile(r"^[\w.]+-e\d+-[0-9a-f]{6}(\.optim)?\.safetensors$")


class _MissingFile(PixelsegError):
    pass


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


def _tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights): save private copies.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model behind DistributedDataParallel or torch.compile."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _write_data(folder: Path, name: str, data: bytes) -> dict:
    write_file(folder / name, data)
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_checkpoint_files(
    folder: str | Path,
    tag: str,
    model: nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> dict:
    """Write a checkpoint's data files under new names; returns its sidecar, which nothing
    reads until ``write_sidecar`` commits it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bare = _unwrap(model)
    stem = f"{tag}-e{int(meta.get('epoch', 0)):04d}-{secrets.token_hex(3)}"
    files = {
        "weights": _write_data(
            folder, f"{stem}.safetensors", save_bytes(_tensors_for_saving(bare.state_dict()))
        )
    }
    sidecar = {"model": bare.pixelseg_spec, **meta}
    if optimizer is not None:
        opt = optimizer.state_dict()
        tensors, scalars = {}, {}
        for idx, state in opt["state"].items():
            for key, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"{idx}.{key}"] = value
                else:
                    scalars[f"{idx}.{key}"] = value
        files["optimizer"] = _write_data(
            folder, f"{stem}.optim.safetensors", save_bytes(_tensors_for_saving(tensors))
        )
        sidecar["optimizer"] = {"param_groups": opt["param_groups"], "scalars": scalars}
    sidecar["files"] = files
    return sidecar


def write_sidecar(folder: str | Path, tag: str, sidecar: dict | Sidecar) -> Path:
    """Commit a checkpoint: atomically replace ``TAG.json``, durably (the folder is flushed
    before and after: the data files' names, then the sidecar's)."""
    path = Path(folder) / f"{tag}.json"
    clean = sidecar.to_dict() if isinstance(sidecar, Sidecar) else sidecar
    fsync_folder(path.parent)
    write_file(path, json.dumps(clean, indent=1).encode("utf-8"))
    fsync_folder(path.parent)
    return path


def save_checkpoint(
    folder: str | Path,
    tag: str,
    model: nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write checkpoint ``TAG`` in ``folder``: data files, then the sidecar (returned)."""
    return write_sidecar(folder, tag, write_checkpoint_files(folder, tag, model, meta, optimizer))


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


def _read_data(meta: Sidecar, role: str) -> dict[str, torch.Tensor]:
    """A checkpoint's data file, checked against the size and sha256 its sidecar records."""
    path, what = data_file(meta, role), "weights" if role == "weights" else "optimizer state"
    record = (meta.files or {}).get(role)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a device (/dev/zero), a pipe: never read
            raise PixelsegError(f"{path}: {what} file is not a regular file (named by {meta.path})")
        if record is not None and st.st_size != record.bytes:  # before reading a byte of it
            raise PixelsegError(
                f"{path}: {what} file is damaged or incomplete ({st.st_size} bytes; "
                f"{meta.path} recorded {record.bytes} bytes and their sha256)"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise _MissingFile(f"{path}: {what} file not found (named by {meta.path})") from None
    except OSError as e:
        raise PixelsegError(f"{path}: cannot read the {what} ({e})") from None
    if record is not None and (
        len(data) != record.bytes or hashlib.sha256(data).hexdigest() != record.sha256
    ):
        raise PixelsegError(
            f"{path}: {what} file is damaged or incomplete ({len(data)} bytes; "
            f"{meta.path} recorded {record.bytes} bytes and their sha256)"
        )
    try:
        return load_bytes(data)
    except Exception as e:  # safetensors raises its own error types
        raise PixelsegError(f"{path}: cannot read the {what} ({e})") from None


def _check_fits(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} is {tuple(v.shape)}, the model's {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:3]}"] if missing else []
        parts += [f"unexpected {unexpected[:3]}"] if unexpected else []
        parts += [f"shape: {'; '.join(wrong[:3])}"] if wrong else []
        raise PixelsegError(
            f"{path}: weights do not fit the model its sidecar describes ({', '.join(parts)})"
        )


def load_checkpoint(
    path: str | Path | Sidecar, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, Sidecar]:
    """Rebuild the model from the sidecar and load its weights. Returns (model, sidecar).

    ``path``: a run folder (its best checkpoint), a sidecar ``.json``, or a ``Sidecar``
    already read (its ``path`` says where its data files are). The model comes back in the
    device's memory format (channels-last), as the trainer ran it: inference is 1.6-2.2x
    faster on the 2-core CPU (``bench/memory_format.py``)."""
    # Every consumer of a loaded model (eval, predict, export, resume) needs its classes.
    meta = path if isinstance(path, Sidecar) else read_sidecar(path, ("classes",))
    try:
        state = _read_data(meta, "weights")
    except _MissingFile:
        # A run still training moved its sidecar on (and removed the old files) while we read.
        meta = read_sidecar(meta.path, ("classes",))
        state = _read_data(meta, "weights")
    spec = meta.model
    # The checkpoint holds every weight: no pretrained file is read (nor needs installing).
    model = create_model(
        spec["name"], spec["num_classes"], spec["in_channels"], load_weights=False, **spec["knobs"]
    )
    _check_fits(model, state, data_file(meta, "weights"))
    model.load_state_dict(state)
    device = torch.device(map_location)
    return model.to(device, memory_format=memory_format(device)), meta


def load_optimizer_state(optimizer: torch.optim.Optimizer, meta: Sidecar) -> None:
    """Restore optimizer state saved by ``save_checkpoint`` (for resuming)."""
    saved = meta.optimizer
    if not isinstance(saved, dict) or not {"param_groups", "scalars"} <= set(saved):
        raise PixelsegError(f"{meta.path}: has no optimizer state to resume from")
    tensors = _read_data(meta, "optimizer")
    path = data_file(meta, "optimizer")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    try:
        for flat, value in list(tensors.items()) + list(saved["scalars"].items()):
            idx, key = flat.split(".", 1)
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != params[int(idx)].shape:
                raise ValueError(
                    f"{flat} is {tuple(value.shape)}, its parameter's "
                    f"{tuple(params[int(idx)].shape)}"
                )
            state.setdefault(int(idx), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise PixelsegError(f"{path}: optimizer state does not fit the model ({e})") from None


def referenced_files(folder: Path) -> set[str] | None:
    """Data files named by any sidecar in ``folder`` (None when a sidecar cannot be read)."""
    names: set[str] = set()
    for sidecar in folder.glob("*.json"):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return None
        views = [meta, *(meta.get("commit") or {}).values()]
        for view in views:
            for record in (view or {}).get("files", {}).values():
                names.add(record["file"])
    return names


def prune_checkpoint_files(folder: str | Path) -> None:
    """Remove data files no sidecar names (left by replaced checkpoints or by a crash) and
    temporary files of interrupted writes. Keeps everything when a sidecar is unreadable."""
    folder = Path(folder)
    keep = referenced_files(folder)
    if keep is None:
        return
    doomed = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.name not in keep
        and (_DATA_FILE.match(p.name) or (p.name.startswith(".") and p.name.endswith(".tmp")))
    ]
    for k, p in enumerate(doomed):  # no fsync: a file that comes back is removed next time
        p.unlink(missing_ok=True)
        if k == 0:
            crash_point()
