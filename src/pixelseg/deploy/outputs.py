"""What prediction makes of one image: the class map, its colour overlay, the uncertainty map and
the objects; as files (``predict``) or as PNG bytes and JSON (``serve``). One place, so the
batch pipeline, the CLI and the server describe an image the same way."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.instances import (
    extract_instances,
    instance_overlay,
    instances_to_json,
    uncertainty_map,
    uncertainty_to_image,
)
from ..data.imageio import encode_png
from ..data.overlay import overlay
from ..data.sample import ClassTable
from ..files import atomic_write_bytes, fsync_folder


@dataclass
class ImagePrediction:
    """Everything derived from one image's probabilities."""

    image: np.ndarray  # (H, W, 3) uint8
    probs: np.ndarray  # (C, H, W) float32
    classes: ClassTable
    min_area: int = 16

    def __post_init__(self) -> None:
        self.class_map = self.probs.argmax(0).astype(np.uint8)  # (H, W)

    def class_pixels(self) -> dict[str, int]:
        counts = np.bincount(self.class_map.ravel(), minlength=self.classes.num_classes)
        return {self.classes.names[c]: int(n) for c, n in enumerate(counts) if n}

    def mask_png(self) -> bytes:
        return encode_png(self.class_map, self.classes.colours)

    def overlay_png(self) -> bytes:
        return encode_png(overlay(self.image, self.class_map, self.classes.colours))

    def uncertainty_png(self) -> bytes:
        return encode_png(uncertainty_to_image(uncertainty_map(self.probs)))

    def instances(self):
        return extract_instances(self.class_map, self.probs, min_area=self.min_area)

    def objects(self, found=None) -> list[dict]:
        """Objects as ``predict --instances`` writes them (class, area, box, confidence)."""
        return instances_to_json(self.instances() if found is None else found, self.classes.names)


@dataclass(frozen=True)
class OutputPaths:
    """The files of one image under the output folder: ``<stem>_mask.png`` and friends."""

    base: Path  # out_dir / relative stem

    def path(self, what: str, suffix: str = ".png") -> Path:
        return self.base.with_name(f"{self.base.name}_{what}{suffix}")


def write_outputs(
    pred: ImagePrediction,
    paths: OutputPaths,
    uncertainty: bool = True,
    instances: bool = False,
    writer: str | None = None,
) -> dict:
    """Write one image's files atomically and durably (mask last: its presence marks a finished
    image for a reader who looks at files rather than the log) and return its record. Every
    file and the folder's entries are on disk when this returns, so a log line written after
    it never names outputs a power loss could take. ``writer``: the batch part's name, for
    temporary names of its own (``atomic_write_bytes``)."""
    write_bytes = functools.partial(atomic_write_bytes, fsync=True, writer=writer)
    record: dict = {"size": list(pred.class_map.shape)}
    write_bytes(paths.path("overlay"), pred.overlay_png())
    record["overlay"] = str(paths.path("overlay"))
    if uncertainty:
        write_bytes(paths.path("uncertainty"), pred.uncertainty_png())
        record["uncertainty"] = str(paths.path("uncertainty"))
    if instances:
        found = pred.instances()
        objects = pred.objects(found)
        write_bytes(paths.path("instances", ".json"), json.dumps(objects, indent=1).encode())
        write_bytes(paths.path("instances"), encode_png(instance_overlay(pred.image, found)))
        record["objects"] = len(objects)
        record["instances"] = str(paths.path("instances", ".json"))
    write_bytes(paths.path("mask"), pred.mask_png())
    record["mask"] = str(paths.path("mask"))
    record["class_pixels"] = pred.class_pixels()
    fsync_folder(paths.base.parent)
    return record
