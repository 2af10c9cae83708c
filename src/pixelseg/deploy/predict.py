"""Load a trained model (a run folder, a checkpoint or an exported ``.onnx`` file) and segment
images with training's preprocessing: class maps and probabilities at the image's own size.
The Predictor itself lives in the engine (``engine/predictor.py``), where analysis can use it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.overlay import colourise, overlay  # noqa: F401 (re-exported: part of the public API)
from ..engine.predictor import Predictor


class PixelValues:
    """The ONNX graph normalises inside (onnx_export.WithPreprocessing): it takes the pixel
    values as floats, unchanged."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float()


def load(model_path: str | Path, device: str = "auto", threads: int | None = None) -> Predictor:
    """Load a run folder (its best checkpoint), a checkpoint ``.json`` or an exported ``.onnx``
    file (run by onnxruntime on the CPU) for prediction."""
    path = Path(model_path)
    if path.suffix.lower() == ".onnx":
        from .onnx_backend import OnnxModel

        model = OnnxModel(path, threads)
        meta = dict(model.meta)
        if model.input_size:  # a fixed-size graph: every image is resized to it and back
            meta["resize"] = list(model.input_size)
        return Predictor(
            model,
            meta,
            torch.device("cpu"),
            normalizer=PixelValues(),
            source=str(path),
            backend="onnx",
        )
    return Predictor.from_checkpoint(path, device)


__all__ = ["PixelValues", "Predictor", "colourise", "load", "overlay"]
