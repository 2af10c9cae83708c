"""``pixelseg robustness RUN`` as a Python call: the run's best checkpoint under every corruption
and severity, plus prediction consistency, saved in the run and added to its report. The
measuring itself is ``analysis/robustness.py`` and ``analysis/stability.py``; this module loads
the run and its data, calls them and saves what they found.

    >>> out = pixelseg.robustness("runs/demo", corruptions=["jpeg"])  # doctest: +SKIP
    >>> print(out.result.table())                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..analysis.corruptions import SEVERITIES
from ..analysis.evaluation import data_root_of
from ..analysis.robustness import RobustnessResult, run_robustness, trained_corruptions_of
from ..analysis.run_report import build_run_report
from ..analysis.stability import ConsistencyResult, prediction_consistency
from ..data.formats import open_split
from ..engine.predictor import Predictor
from ..files import atomic_write_text
from ..runs import RunFolder


@dataclass
class RunRobustness:
    """What ``robustness`` measured and where it saved it."""

    result: RobustnessResult
    consistency: ConsistencyResult
    files: list[Path]  # robustness.json, consistency.json, robustness.png
    report: Path


def robustness(
    run: str | Path,
    data: str | Path | None = None,
    split: str = "val",
    data_format: str = "auto",
    corruptions: Iterable[str] | None = None,
    severities: Iterable[int] = SEVERITIES,
    max_images: int | None = None,
    seed: int = 0,
    trained_corruptions: Iterable[str] | None = None,
    device: str = "auto",
    progress: bool = True,
) -> RunRobustness:
    """Evaluate the run's best checkpoint on ``split`` (of ``data``, by default the data it
    trained on) clean and corrupted, and its consistency under flips, shifts and rescaling;
    write ``robustness/`` in the run and re-render its report.

    ``trained_corruptions`` names the corruptions to report as seen in training (default: the
    run's ``augment.corruptions``; give another run's to compare a baseline on the same groups).
    """
    folder = RunFolder(run)
    predictor = Predictor.from_checkpoint(folder.path, device)
    source = open_split(data or data_root_of(folder.path), split, data_format)
    n = min(len(source), max_images or len(source))
    samples = [source.load(i) for i in range(n)]
    trained = (
        tuple(trained_corruptions)
        if trained_corruptions is not None
        else trained_corruptions_of(folder.path)
    )

    def predict_fn(images):
        return [predictor.predict(im) for im in images]

    result = run_robustness(
        predict_fn,
        samples,
        predictor.num_classes,
        corruptions,
        severities,
        seed=seed,
        progress=progress,
        trained_corruptions=trained,
    )
    consistency = prediction_consistency(predict_fn, [s.image for s in samples])
    atomic_write_text(folder.robustness, json.dumps(result.to_dict(), indent=1))
    atomic_write_text(folder.consistency, json.dumps(consistency.to_dict(), indent=1))
    result.plot(folder.robustness_plot)
    report = build_run_report(folder.path)
    files = [folder.robustness, folder.consistency, folder.robustness_plot]
    return RunRobustness(result, consistency, files, report)


__all__ = ["RunRobustness", "robustness"]
