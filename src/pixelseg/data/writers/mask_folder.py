"""mask-folder: ``OUT/<split>/images/<name><ext>``, ``OUT/<split>/masks/<name>.png`` (class ids,
255 ignored, as a palette PNG in the class colours) and ``classes.yaml``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..imageio import encode_png
from .base import DatasetWriter, copy_file, write_file


class MaskFolderWriter(DatasetWriter):
    format_name = "mask-folder"

    def add(self, split: str, name: str, image_file: Path, mask: np.ndarray) -> None:
        copy_file(image_file, self.stage / split / "images" / f"{name}{image_file.suffix}")
        png = encode_png(mask.astype(np.uint8), self.classes.colours)
        write_file(self.stage / split / "masks" / f"{name}.png", png)

    def finish(self) -> None:
        text = yaml.safe_dump(self.classes.to_dict(), sort_keys=False)
        write_file(self.stage / "classes.yaml", text.encode())
