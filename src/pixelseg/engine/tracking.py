"""Experiment tracking: a run watched as it trains, in TensorBoard, in MLflow, or both.

``train.track: [tensorboard, mlflow]`` (``pixelseg train --track tensorboard``) sends each
epoch's row (losses, accuracies, val mIoU, lr, epoch time), the resolved configuration and a
few example predictions of the validation split to

- TensorBoard: event files in ``RUN/tensorboard/`` (``tensorboard --logdir RUN``);
- MLflow: a run in ``MLFLOW_TRACKING_URI`` (MLflow's own default when unset), with the
  configuration as params, and config.yaml, the best checkpoint and report.html as artifacts.

Only the process that writes the run folder (rank 0 under torchrun) tracks. The MLflow run's
id is kept in ``RUN/tracking.json``, so a resumed run, and a report rebuilt later, log to the
same MLflow run. Both tools are optional extras: a missing one is a one-line error naming the
pip command, raised before training starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..data.overlay import overlay
from ..data.sample import ClassTable
from ..data.transforms import EvalTransform
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..runs import RunFolder

_INSTALL = {
    "tensorboard": ("tensorboard", "pip install 'pixelseg[tensorboard]'"),
    "mlflow": ("mlflow", "pip install 'pixelseg[mlflow]'"),
}
EXAMPLES = 4  # validation images shown per epoch
MLFLOW_EXPERIMENT = "pixelseg"  # MLFLOW_EXPERIMENT_NAME overrides it
_PARAM_CHARS = 6000  # MLflow's limit on a param's value


def check_trackers(names: Sequence[str]) -> None:
    """Raise a one-line error for a tracker whose package is not installed (the names were
    checked with the configuration)."""
    for name in names:
        module, pip = _INSTALL[name]
        try:
            __import__(module)
        except ImportError as e:
            raise PixelsegError(
                f"train.track={name}: {module} is not installed ({e}); {pip}"
            ) from None


def scalar_tag(key: str) -> str:
    """A metrics row's key as a TensorBoard tag, grouped by split: ``val_miou`` -> ``val/miou``."""
    split, _, rest = key.partition("_")
    return f"{split}/{rest}" if split in ("train", "val") and rest else key


def flat_params(cfg: RunConfig) -> dict[str, str]:
    """The resolved configuration as ``section.key`` -> text (model knobs as ``model.<knob>``,
    the way overrides spell them)."""
    out: dict[str, str] = {}
    for section, values in cfg.to_dict().items():
        if not isinstance(values, dict):
            out[section] = str(values)
            continue
        for key, value in values.items():
            if section == "model" and key == "knobs":
                out.update({f"model.{k}": str(v) for k, v in value.items()})
            else:
                out[f"{section}.{key}"] = str(value)
    return {k: v[:_PARAM_CHARS] for k, v in out.items()}


class ExamplePanels:
    """A few fixed validation images drawn as image | label | prediction, once per epoch."""

    def __init__(self, source, classes: ClassTable, resize=None, count: int = EXAMPLES) -> None:
        picks = np.linspace(0, len(source) - 1, min(count, len(source))).round().astype(int)
        to_model_size = EvalTransform(tuple(resize) if resize else None)  # as validation sees it
        self.samples = [
            to_model_size(s.image, s.mask)
            for s in (source.load(int(i)) for i in dict.fromkeys(picks.tolist()))
        ]
        self.colours = classes.colours

    @torch.no_grad()
    def draw(self, model: nn.Module, normalizer, device: torch.device) -> list[np.ndarray]:
        was_training = model.training
        model.eval()
        panels = []
        try:
            for image, mask in self.samples:
                x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
                logits = model(normalizer(x.to(device)))
                pred = logits[0].argmax(0).cpu().numpy().astype(np.uint8)
                label = mask.clip(0, 255).astype(np.uint8)  # ignore (255) shows uncoloured
                panels.append(
                    np.concatenate(
                        [
                            image,
                            overlay(image, label, self.colours),
                            overlay(image, pred, self.colours),
                        ],
                        axis=1,
                    )
                )
        finally:
            model.train(was_training)
        return panels


class _TensorBoard:
    NAME = "TensorBoard"

    def __init__(self, run: RunFolder, cfg: RunConfig, start_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops what a killed session logged past the checkpoint we resume from.
        self.writer = SummaryWriter(
            str(run.tensorboard), purge_step=start_epoch if start_epoch > 1 else None
        )
        if start_epoch == 1:
            yaml_text = "\n".join("    " + line for line in cfg.to_yaml().splitlines())
            self.writer.add_text("config", yaml_text, 0)  # indented: rendered as code

    def where(self) -> str:
        return f"TensorBoard event files in {self.writer.log_dir} (tensorboard --logdir DIR)"

    def log_epoch(self, row: dict, panels: list[np.ndarray]) -> None:
        epoch = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(scalar_tag(key), value, epoch)
        for i, panel in enumerate(panels):
            self.writer.add_image(f"examples/{i}", panel, epoch, dataformats="HWC")
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


def _mlflow_client(uri: str | None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


class _MLflow:
    NAME = "MLflow"

    def __init__(self, run: RunFolder, cfg: RunConfig, state: dict) -> None:
        import mlflow

        previous = state.get("mlflow")
        self.uri = previous["tracking_uri"] if previous else mlflow.get_tracking_uri()
        self.client = _mlflow_client(self.uri)
        self.run_id = previous["run_id"] if previous else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", MLFLOW_EXPERIMENT)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        self.run_id = self.client.create_run(
            experiment_id, run_name=run.name, tags={"pixelseg.run_dir": str(run.path.resolve())}
        ).info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        state["mlflow"] = {"tracking_uri": self.uri, "run_id": self.run_id}

    def where(self) -> str:
        return f"MLflow run {self.run_id} at {self.uri}"

    def log_epoch(self, row: dict, panels: list[np.ndarray]) -> None:
        from mlflow.entities import Metric

        epoch, now = row["epoch"], int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, epoch)
            for key, value in row.items()
            if key != "epoch" and isinstance(value, int | float)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)
        for i, panel in enumerate(panels):
            self.client.log_image(self.run_id, panel, key=f"example_{i}", step=epoch)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


class Tracking:
    """The trackers one run logs to; empty (every call a no-op) when none is asked for."""

    def __init__(
        self,
        names: Sequence[str],
        run_dir: str | Path,
        cfg: RunConfig,
        classes: ClassTable,
        val_source,
        start_epoch: int = 1,
        log=print,
    ) -> None:
        check_trackers(names)
        self.run, self.log = RunFolder(Path(run_dir)), log
        self.trackers: list[Any] = []
        self.panels = (
            ExamplePanels(val_source, classes, cfg.data.resize)
            if names and len(val_source)
            else None
        )
        state = read_state(self.run)
        for name in dict.fromkeys(names):
            if name == "tensorboard":
                self.trackers.append(_TensorBoard(self.run, cfg, start_epoch))
            else:
                self.trackers.append(_MLflow(self.run, cfg, state))
        if "mlflow" in state:
            atomic_write_text(self.run.tracking, json.dumps(state, indent=1) + "\n")
        for tracker in self.trackers:
            log(f"tracking: {tracker.where()}")

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_epoch(self, row: dict, model: nn.Module, normalizer, device) -> None:
        if not self.trackers:
            return
        panels = self.panels.draw(model, normalizer, device) if self.panels else []
        for tracker in list(self.trackers):
            try:
                tracker.log_epoch(row, panels)
            except Exception as e:  # noqa: BLE001 (a tracker down must not end a training run)
                self.log(f"warning: {tracker.NAME} stopped tracking this run: {e}")
                self.trackers.remove(tracker)

    def close(self, status: str = "FINISHED") -> None:
        """End every tracker; artifacts of a finished run: config.yaml and the best checkpoint."""
        if not self.trackers:
            return
        if status == "FINISHED":
            log_artifacts(self.run.path, [self.run.config_file], "")
            log_artifacts(self.run.path, checkpoint_files(self.run, "best"), "checkpoints")
        for tracker in self.trackers:
            tracker.close(status)
        self.trackers = []


def read_state(run: RunFolder) -> dict:
    """``tracking.json``: where this run's MLflow run is ({} when it has none)."""
    with contextlib.suppress(FileNotFoundError):
        return json.loads(run.tracking.read_text())
    return {}


def checkpoint_files(run: RunFolder, tag: str) -> list[Path]:
    """The sidecar of checkpoint ``tag`` and the weights it names (none when it is absent)."""
    sidecar = run.sidecar(tag)
    if not sidecar.is_file():
        return []
    files = json.loads(sidecar.read_text()).get("files", {})
    return [sidecar] + [run.checkpoints / f["file"] for f in files.values()]


def log_artifacts(run_dir: str | Path, paths: Sequence[Path], folder: str = "") -> None:
    """Attach files to the run's MLflow run, if it has one (``report.html`` once it is built).
    A run that never tracked to MLflow is left alone."""
    mlflow_state = read_state(RunFolder(Path(run_dir))).get("mlflow")
    if not mlflow_state:
        return
    check_trackers(["mlflow"])
    client = _mlflow_client(mlflow_state["tracking_uri"])
    for path in paths:
        if Path(path).is_file():
            client.log_artifact(mlflow_state["run_id"], str(path), folder or None)


__all__ = [
    "ExamplePanels",
    "Tracking",
    "check_trackers",
    "flat_params",
    "log_artifacts",
    "read_state",
    "scalar_tag",
]
