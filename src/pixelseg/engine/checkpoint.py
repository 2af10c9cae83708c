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

The sidecar itself, its reading and checks, are ``sidecar.py``'s.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from ..errors import PixelsegError
from ..files import fsync_folder
from ..models import create_model
from .device import memory_format
from .faults import crash_point, write_file
from .optim import load_optimizer
from .sidecar import Sidecar, data_file, read_sidecar

_DATA_FILE = re.compile(r"^[\w.]+-e\d+-[0-9a-f]{6}(\.optim)?\.safetensors$")


class _MissingFile(PixelsegError):
    pass


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
        load_optimizer(optimizer, {"state": state, "param_groups": saved["param_groups"]})
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
