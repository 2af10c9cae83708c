"""A trained PyTorch model with training's preprocessing: class maps and probabilities at the
image's own size. Deployment (``deploy/predict.py``: ``pixelseg.load``, the ONNX backend) and
the analysis layer (the run report's example predictions) share this one class."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sample import ClassTable
from ..data.transforms import Normalizer
from ..errors import PixelsegError
from .checkpoint import load_checkpoint
from .device import memory_format, pick_device
from .inference import predict_probs

# What runs each backend's forward pass, as ``GET /model`` and the logs name it.
RUNTIMES = {"torch": "torch", "onnx": "onnxruntime"}


@dataclass(frozen=True)
class PredictorInfo:
    """What a loaded model is and what runs it, for logs and ``GET /model``."""

    model: str  # the registered model's name
    backend: str  # "torch" (a checkpoint) or "onnx" (an exported file)
    runtime: str  # what runs the forward pass: "torch" or "onnxruntime"
    device: str
    source: str  # the file's name, without its folder
    input_size: tuple[int, int] | None  # the (H, W) every image is resized to, if any

    def to_dict(self) -> dict:
        return asdict(self)


class Predictor:
    """A trained model with everything needed to reproduce training's preprocessing.

    >>> p = pixelseg.load("runs/demo")  # or "model.onnx"          # doctest: +SKIP
    >>> class_map = p.predict(image)   # (H, W) int64 class ids  # doctest: +SKIP

    ``meta``: the model's metadata as JSON, a checkpoint ``Sidecar.to_dict()`` or an exported
    file's; ``source``: the file it came from; ``backend``: what it is, ``"torch"`` (a
    checkpoint) or ``"onnx"`` (an exported file), so that callers ask rather than guess from
    the file name.
    """

    def __init__(
        self,
        model,
        meta: dict,
        device: torch.device,
        normalizer=None,
        source: str = "",
        backend: str = "torch",
    ) -> None:
        if backend not in RUNTIMES:
            raise ValueError(f"backend {backend!r}: expected one of {', '.join(RUNTIMES)}")
        self.model = model.to(device).eval()  # load_checkpoint gives it the memory format
        self.meta = meta
        self.device = device
        self.source = source
        self.backend = backend
        try:
            self.classes = ClassTable.from_dict(meta["classes"])
        except (KeyError, TypeError, ValueError):
            raise PixelsegError(
                f"{self.source}: has no valid class table ('classes'); it is damaged or not a "
                "pixelseg model"
            ) from None
        norm = meta.get("normalization", {})
        self.normalizer = normalizer or (Normalizer(**norm) if norm else Normalizer())
        self.resize = tuple(meta["resize"]) if meta.get("resize") else None

    def identity(self) -> dict:
        """What makes two predictions comparable: the model file, and the checkpoint's epoch
        or the exported file's size (a re-trained or re-exported model at the same path)."""
        path = Path(self.source)
        ident = {"path": str(path.resolve())}
        if self.backend == "onnx":
            ident["bytes"] = path.stat().st_size if path.is_file() else None
        else:
            ident["epoch"] = self.meta.get("epoch")
        return ident

    def info(self) -> PredictorInfo:
        """What this predictor is and runs on, for logs and ``GET /model``."""
        return PredictorInfo(
            model=self.meta.get("model", {}).get("name", "?"),
            backend=self.backend,
            runtime=RUNTIMES[self.backend],
            device=str(self.device),
            source=Path(self.source.rstrip("/")).name,
            input_size=self.resize,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> Predictor:
        """A run folder (its best checkpoint) or a checkpoint ``.json``, on ``device``."""
        dev = pick_device(device)
        model, sidecar = load_checkpoint(path, map_location=dev)
        return cls(model, sidecar.to_dict(), dev, source=str(sidecar.path))

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    def predict_proba(
        self,
        image: np.ndarray,
        tta: bool = False,
        scales=(1.0,),
        window: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """(H, W, 3) uint8 -> (C, H, W) float32 probabilities at the input's size."""
        return self.predict_proba_batch([image], tta, scales, window)[0]

    def predict_proba_batch(
        self,
        images: list[np.ndarray],
        tta: bool = False,
        scales=(1.0,),
        window: tuple[int, int] | None = None,
    ) -> list[np.ndarray]:
        """Images of one size go through the model as one batch; other sizes one at a time."""
        sizes = {im.shape for im in images}
        if len(sizes) > 1:
            return [p for im in images for p in self.predict_proba_batch([im], tta, scales, window)]
        # np.stack copies: arrays from PIL or a corruption may be read-only, which torch warns
        # about; the copy is small next to the forward pass.
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(self.device)
        x = self.normalizer(x)  # (B, 3, H, W) float32
        size = x.shape[-2:]
        if self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
        # As the model's weights (load_checkpoint); an ONNX model copies back to NCHW, cheaply.
        x = x.contiguous(memory_format=memory_format(self.device))
        p = predict_probs(self.model, x, tta=tta, scales=scales, window=window)
        if p.shape[-2:] != size:
            p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
        return list(p.cpu().numpy())

    def predict(self, image: np.ndarray, **kwargs) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) int64 class ids."""
        return self.predict_proba(image, **kwargs).argmax(0).astype(np.int64)
