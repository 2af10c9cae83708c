"""The layout of a run folder, in one place: every module that reads or writes a run's files
asks a ``RunFolder`` for the path instead of spelling it.

    runs/<name>/config.yaml          the resolved configuration: ``RunFolder.config()``
                metrics.jsonl        one JSON object per epoch
                checkpoints/         last / best / ema: a JSON sidecar + weights each
                model_summary.txt    per-layer table at the training size
                skipped.txt          files left out by ``--skip-bad``
                report.html          the self-contained report
                eval/<split>.json    results of ``pixelseg eval`` (``<split>_tta.json`` with TTA)
                robustness/          robustness.json, consistency.json, robustness.png
                predictions/         the demo's predictions of held-out scenes
                export/model.onnx    ``pixelseg export``'s default output
                tensorboard/         event files of ``train.track=[tensorboard]``
                tracking.json        the MLflow run of ``train.track=[mlflow]``

>>> run = RunFolder("runs/demo")
>>> run.best.as_posix(), run.eval_result("val").as_posix()
('runs/demo/checkpoints/best.json', 'runs/demo/eval/val.json')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, load_config
from .config_overrides import Overrides

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run (nothing is read or created until asked)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def containing(cls, path: str | Path) -> RunFolder:
        """The run of ``path``: a run folder itself, or a checkpoint file in its checkpoints/."""
        path = Path(path)
        return cls(path if path.is_dir() else path.parent.parent)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    def has_config(self) -> bool:
        return self.config_file.is_file()

    def config(self, overrides: Overrides | Sequence[str] | None = None) -> RunConfig:
        """The run's resolved configuration, typed and validated (``load_config``); a missing
        or damaged ``config.yaml`` is a PixelsegError naming it."""
        return load_config(self.config_file, overrides)

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def sidecar(self, tag: str) -> Path:
        """``checkpoints/<tag>.json``: tag is last, best or ema."""
        return self.checkpoints / f"{tag}.json"

    @property
    def last(self) -> Path:
        return self.sidecar("last")

    @property
    def best(self) -> Path:
        return self.sidecar("best")

    @property
    def ema(self) -> Path:
        return self.sidecar("ema")

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    def eval_result(self, split: str, tta: bool = False) -> Path:
        """``eval/<split>.json``, or ``eval/<split>_tta.json`` for test-time augmentation."""
        return self.eval_dir / f"{split}{'_tta' if tta else ''}.json"

    @property
    def robustness_dir(self) -> Path:
        return self.path / "robustness"

    @property
    def robustness(self) -> Path:
        return self.robustness_dir / "robustness.json"

    @property
    def consistency(self) -> Path:
        return self.robustness_dir / "consistency.json"

    @property
    def robustness_plot(self) -> Path:
        return self.robustness_dir / "robustness.png"

    @property
    def report(self) -> Path:
        return self.path / REPORT_NAME

    @property
    def model_summary(self) -> Path:
        return self.path / "model_summary.txt"

    @property
    def skipped(self) -> Path:
        return self.path / "skipped.txt"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    @property
    def onnx(self) -> Path:
        return self.path / "export" / "model.onnx"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def tracking(self) -> Path:
        return self.path / "tracking.json"


__all__ = ["REPORT_NAME", "RunFolder"]
