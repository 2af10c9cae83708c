"""onnxruntime behind the same interface as a PyTorch model, so the ``Predictor`` (TTA, scales,
sliding windows, resizing) works unchanged on an exported ``.onnx`` file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PixelsegError

METADATA_KEY = "pixelseg"  # the same key the exporter writes (onnx_export.METADATA_KEY)


def new_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimisations; ``threads`` intra-op threads
    (default: the cores this process may use)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PixelsegError(
            f'{path}: running an ONNX model needs onnxruntime: pip install "pixelseg[export]"'
        ) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise PixelsegError(f"{path}: not a loadable ONNX model ({str(e)[:200]})") from None


def read_metadata(session, path: str | Path) -> dict:
    """The exporter's metadata (model, classes, normalisation, sizes) from a session."""
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise PixelsegError(
            f"{path}: ONNX file has no pixelseg metadata; export it with `pixelseg export RUN`"
        )
    try:
        meta = json.loads(props[METADATA_KEY])
        meta["classes"]["names"], meta["model"]["name"]  # noqa: B018 (required keys)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise PixelsegError(f"{path}: damaged pixelseg metadata ({e})") from None
    return meta


class OnnxModel:
    """Callable like an ``nn.Module`` in eval mode: (B, 3, H, W) float RGB 0-255 tensor ->
    (B, C, H, W) logits tensor. A graph fixed to one size gets inputs resized to it and logits
    resized back, so windows and scales still work (the Predictor resizes whole images to that
    size already, so this path is only taken by those options)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = new_session(path, threads)
        self.meta = read_metadata(self.session, path)
        self.input_size = tuple(self.meta["input_size"]) if self.meta.get("input_size") else None

    def eval(self) -> OnnxModel:
        return self

    def to(self, device) -> OnnxModel:
        return self  # onnxruntime's CPU session; inputs are moved to the CPU in __call__

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.input_size and tuple(size) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        logits = torch.from_numpy(self.session.run(None, {"image": array})[0])
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
