"""Checkpoints: weights in safetensors plus a JSON sidecar; loading runs no pickled code.

A checkpoint ``TAG`` in a folder is ``TAG.safetensors`` (model weights), optionally
``TAG.optim.safetensors`` (optimizer tensors, for resuming) and ``TAG.json`` (model name and
knobs, classes, normalisation, epoch, metrics, optimizer scalars). The sidecar is written last,
so a checkpoint without one was interrupted and is never read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from ..data.imageio import atomic_write_bytes, atomic_write_text
from ..errors import PixelsegError
from ..models import create_model


def _tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights): save private copies.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model behind DistributedDataParallel or torch.compile."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_checkpoint(
    folder: str | Path,
    tag: str,
    model: nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    folder = Path(folder)
    bare = _unwrap(model)
    atomic_write_bytes(
        folder / f"{tag}.safetensors", save_bytes(_tensors_for_saving(bare.state_dict()))
    )
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
        atomic_write_bytes(
            folder / f"{tag}.optim.safetensors", save_bytes(_tensors_for_saving(tensors))
        )
        sidecar["optimizer"] = {"param_groups": opt["param_groups"], "scalars": scalars}
    atomic_write_text(folder / f"{tag}.json", json.dumps(sidecar, indent=1))
    return folder / f"{tag}.json"


def read_sidecar(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():  # a run folder: its best checkpoint
        path = path / "checkpoints" / "best.json"
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise PixelsegError(
            f"{path}: checkpoint not found (expected a run folder or a checkpoint .json)"
        )
    try:
        return {**json.loads(path.read_text()), "_path": str(path)}
    except json.JSONDecodeError as e:
        raise PixelsegError(f"{path}: damaged checkpoint sidecar ({e})") from None


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Rebuild the model from the sidecar and load its weights. Returns (model, sidecar)."""
    meta = read_sidecar(path)
    spec = meta["model"]
    model = create_model(spec["name"], spec["num_classes"], spec["in_channels"], **spec["knobs"])
    weights = Path(meta["_path"]).with_suffix(".safetensors")
    try:
        state = load_bytes(weights.read_bytes())
    except (OSError, Exception) as e:  # safetensors raises its own error types
        raise PixelsegError(f"{weights}: cannot read weights ({e})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise PixelsegError(
            f"{weights}: weights do not fit the model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.to(map_location), meta


def load_optimizer_state(optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Restore optimizer state saved by ``save_checkpoint`` (for resuming)."""
    if "optimizer" not in meta:
        raise PixelsegError(f"{meta['_path']}: has no optimizer state to resume from")
    tensors = load_bytes(Path(meta["_path"]).with_suffix(".optim.safetensors").read_bytes())
    state: dict[int, dict] = {}
    for flat, value in list(tensors.items()) + list(meta["optimizer"]["scalars"].items()):
        idx, key = flat.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
