"""Load a trained run and segment images: class maps, probabilities, files on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.imageio import read_image, write_png
from ..data.sample import ClassTable
from ..data.transforms import Normalizer
from ..engine.checkpoint import load_checkpoint
from ..engine.device import pick_device
from ..engine.inference import predict_probs


class Predictor:
    """A trained model with everything needed to reproduce training's preprocessing.

    >>> p = pixelseg.load("runs/demo")  # doctest: +SKIP
    >>> class_map = p.predict(image)   # (H, W) int64 class ids  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, meta: dict, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.meta = meta
        self.device = device
        self.classes = ClassTable.from_dict(meta["classes"])
        norm = meta.get("normalization", {})
        self.normalizer = Normalizer(**norm) if norm else Normalizer()
        self.resize = tuple(meta["resize"]) if meta.get("resize") else None

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
        out = []
        for image in images:  # one at a time: sizes may differ
            # np.array copies: arrays from PIL or a corruption may be read-only, which torch
            # warns about; the copy is small next to the forward pass.
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].to(self.device)
            x = self.normalizer(x)
            size = x.shape[-2:]
            if self.resize:
                x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
            p = predict_probs(self.model, x, tta=tta, scales=scales, window=window)
            if p.shape[-2:] != size:
                p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
            out.append(p[0].cpu().numpy())
        return out

    def predict(self, image: np.ndarray, **kwargs) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) int64 class ids."""
        return self.predict_proba(image, **kwargs).argmax(0).astype(np.int64)


def load(run_or_checkpoint: str | Path, device: str = "auto") -> Predictor:
    """Load a run folder (its best checkpoint) or a checkpoint ``.json`` for prediction."""
    dev = pick_device(device)
    model, meta = load_checkpoint(run_or_checkpoint, map_location=dev)
    return Predictor(model, meta, dev)


def colourise(class_map: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(colours)] = np.array(colours, dtype=np.uint8)
    return lut[class_map.clip(0, 255)]


def overlay(image: np.ndarray, class_map: np.ndarray, colours, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over the image (class 0 included, so background is tinted too)."""
    blended = image.astype(np.float32) * (1 - alpha) + colourise(class_map, colours) * alpha
    return blended.clip(0, 255).astype(np.uint8)


def predict_files(
    predictor: Predictor,
    paths: list[Path],
    out_dir: Path,
    tta: bool = False,
    window: tuple[int, int] | None = None,
    progress: bool = True,
    extra=None,
    scales: tuple[float, ...] = (1.0,),
) -> list[dict]:
    """For each image write ``<stem>_mask.png`` (palette PNG of class ids) and
    ``<stem>_overlay.png``; ``extra(image, probs, stem)`` may write more and return a dict."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    records = []
    for path in tqdm(paths, desc="predict", unit="img", disable=not progress, leave=False):
        image = read_image(path)
        probs = predictor.predict_proba(image, tta=tta, scales=scales, window=window)
        class_map = probs.argmax(0)
        stem = Path(path).stem
        write_png(
            out_dir / f"{stem}_mask.png", class_map.astype(np.uint8), predictor.classes.colours
        )
        write_png(
            out_dir / f"{stem}_overlay.png", overlay(image, class_map, predictor.classes.colours)
        )
        record = {
            "image": str(path),
            "mask": str(out_dir / f"{stem}_mask.png"),
            "overlay": str(out_dir / f"{stem}_overlay.png"),
            "class_pixels": {
                predictor.classes.names[c]: int(n)
                for c, n in enumerate(
                    np.bincount(class_map.ravel(), minlength=predictor.num_classes)
                )
                if n
            },
        }
        if extra is not None:
            record.update(extra(image, probs, stem) or {})
        records.append(record)
    return records
