"""onnxruntime behind the same interface as a PyTorch model, so the ``Predictor`` (TTA, scales,
sliding windows, resizing) works unchanged on an exported ``.onnx`` file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.imageio import MAX_PIXELS
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
    """The exporter's metadata (model, classes, normalisation, sizes) from a session, checked:
    a missing or malformed value is a one-line error naming the file and the key."""
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise PixelsegError(
            f"{path}: ONNX file has no pixelseg metadata; export it with `pixelseg export RUN`"
        )
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise PixelsegError(f"{path}: damaged pixelseg metadata ({e})") from None
    problem = metadata_problem(meta, _graph_classes(session))
    if problem:
        key, what = problem
        raise PixelsegError(f"{path}: damaged pixelseg metadata: {key} {what}")
    return meta


def _graph_classes(session) -> int | None:
    """The number of classes the graph outputs, when its shape fixes it."""
    outputs = session.get_outputs()
    shape = outputs[0].shape if outputs else None
    return shape[1] if shape and len(shape) == 4 and isinstance(shape[1], int) else None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _size_problem(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(_is_int(v) for v in value):
        return f"is {str(value)[:60]!r}, not null or [height, width]"
    if min(value) < 1 or value[0] * value[1] > MAX_PIXELS:
        return f"is {value}: a size needs 1 to {MAX_PIXELS:,} pixels"
    return None


def metadata_problem(meta, graph_classes: int | None = None) -> tuple[str, str] | None:
    """(key, what is wrong) for the first malformed value of exported metadata, else None."""
    if not isinstance(meta, dict):
        return "pixelseg", "is not a JSON object"
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        return "model.name", "is missing or not text"
    if not isinstance(model.get("knobs", {}), dict):
        return "model.knobs", "is not an object"
    classes = meta.get("classes")
    names = classes.get("names") if isinstance(classes, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return "classes.names", "is missing or not a non-empty list of names"
    colours = classes.get("colours") or []
    rgb = (
        all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c)
            for c in colours
        )
        if isinstance(colours, list)
        else False
    )
    if not rgb or (colours and len(colours) != len(names)):
        return "classes.colours", f"is not one [r, g, b] (0-255) per class ({len(names)})"
    if graph_classes is not None and graph_classes != len(names):
        return "classes.names", f"has {len(names)} classes, the graph outputs {graph_classes}"
    for key in ("input_size", "resize"):
        problem = _size_problem(meta.get(key))
        if problem:
            return key, problem
    norm = meta.get("normalization")
    if norm is not None and not isinstance(norm, dict):
        return "normalization", "is not an object"
    if meta.get("epoch") is not None and not _is_int(meta["epoch"]):
        return "epoch", f"is {meta['epoch']!r}, not a whole number"
    return None


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
