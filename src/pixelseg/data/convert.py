"""``pixelseg convert``: any dataset pixelseg reads, written in another format, its splits and
class names kept (``data/writers/``: mask-folder, labelme, yolo, coco).

Every label map is read through its reader (so a bad file stops the conversion with the
reader's one-line error), traced into polygons where the target format needs them, and
written with the image file copied as it is. The output appears under its name only when the
whole dataset is written (a partial folder is renamed into place), and an existing output
folder is never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import PixelsegError
from .formats import open_split, resolve_format
from .writers.base import DatasetWriter
from .writers.coco import COCOWriter
from .writers.labelme import LabelMeWriter
from .writers.mask_folder import MaskFolderWriter
from .writers.yolo import YOLOWriter

WRITERS: dict[str, type[DatasetWriter]] = {
    w.format_name: w for w in (MaskFolderWriter, LabelMeWriter, YOLOWriter, COCOWriter)
}


@dataclass
class ConvertResult:
    out: Path
    to: str
    images: dict[str, int] = field(default_factory=dict)  # split -> images written

    def summary(self) -> str:
        counts = ", ".join(f"{s} {n}" for s, n in self.images.items())
        return f"wrote {self.out} ({self.to}: {counts})"


def convert_dataset(
    src: str | Path,
    out: str | Path,
    to: str,
    src_format: str = "auto",
    splits: list[str] | None = None,
    progress: bool = True,
) -> ConvertResult:
    """Write the dataset at ``src`` (every split, or ``splits``) to ``out`` in format ``to``.

    >>> pixelseg.convert_dataset("camvid", "camvid-labelme", "labelme")  # doctest: +SKIP
    """
    if to not in WRITERS:
        raise PixelsegError(f"--to {to}: unknown; choose from {', '.join(WRITERS)}")
    fmt = resolve_format(src, src_format)
    names = splits or fmt.splits(Path(src))
    sources = [open_split(src, s, fmt.name) for s in names]
    if not sources:
        raise PixelsegError(f"{src}: no split to convert")
    classes = sources[0].classes
    for source in sources[1:]:
        if source.classes.names != classes.names:
            raise PixelsegError(
                f"{src}: splits {sources[0].split} and {source.split} disagree on the classes"
            )
    writer = WRITERS[to](out, classes)
    result = ConvertResult(Path(out), to)
    total = sum(len(s) for s in sources)
    try:
        with tqdm(total=total, desc=f"convert to {to}", unit="img", disable=not progress) as bar:
            for source in sources:
                for i, item in enumerate(source.items):
                    sample = source.load(i)
                    writer.add(source.split, item.name, item.image, sample.mask)
                    result.images[source.split] = result.images.get(source.split, 0) + 1
                    bar.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return result


__all__ = ["WRITERS", "ConvertResult", "convert_dataset"]
