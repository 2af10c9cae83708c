"""``pixelseg predict`` as one call: images given by path (or a list file) in, outputs out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import PixelsegError
from ..files import atomic_write_text
from .batch import predict_stream
from .batch_journal import BatchSummary
from .batch_listing import (
    ListLayout,
    Shard,
    count_file_list,
    expand_images,
    flat_names,
    read_file_list,
)
from .batch_pipeline import PredictOptions
from .predict import Predictor, load


def predict_images(
    model: str | Path | Predictor,
    images: Sequence[str] = (),
    out_dir: str | Path = "predictions",
    *,
    files: str | Path | None = None,
    root: str | Path | None = None,
    options: PredictOptions | None = None,
    shard: Shard | None = None,
    device: str = "auto",
    progress: bool = True,
) -> BatchSummary:
    """Segment ``images`` (files or folders; outputs ``<stem>_*`` in ``out_dir``, and the whole
    table as ``predictions.json``) or the paths listed in ``files`` (streamed, any length;
    read from ``root``, by default the list's folder, and mirrored under ``out_dir`` by their
    path relative to it; an entry outside it fails: ``ListLayout``). ``model``: a run folder, a
    checkpoint .json, an exported .onnx file, or a loaded Predictor. Images already done (in
    the output's log) are skipped; failed ones are in ``summary.failed``, the rest are done.

    >>> summary = pixelseg.predict_images("runs/demo", ["photos/"], "preds")  # doctest: +SKIP
    """
    if bool(images) == bool(files):
        raise PixelsegError("predict: give image files or folders, or --files LIST (not both)")
    options = options or PredictOptions()
    if options.batch_size < 1 or options.workers < 1:
        raise PixelsegError("--batch-size and --workers must be at least 1")
    out = Path(out_dir)
    if files:
        layout = ListLayout(root if root is not None else Path(files).parent)
        kwargs = dict(
            entries=read_file_list(files), total=count_file_list(files), locate=layout.locate
        )
    else:
        paths = expand_images(list(images))
        names = flat_names(paths)
        kwargs = dict(entries=paths, total=len(paths), locate=lambda p: (Path(p), names[p]))
    predictor = model if isinstance(model, Predictor) else load(model, device)
    summary = predict_stream(
        predictor,
        out_dir=out,
        options=options,
        shard=shard,
        progress=progress,
        keep_records=not files,
        **kwargs,
    )
    if not files:  # a small job also gets the whole table as one JSON file
        atomic_write_text(out / "predictions.json", json.dumps(summary.records, indent=1))
    return summary
