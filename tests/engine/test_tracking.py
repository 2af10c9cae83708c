"""Experiment tracking (train.track): what a run sends to TensorBoard and MLflow, read back
through each tool's own reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pixelseg.analysis.run_report import finish_run
from pixelseg.config import load_config
from pixelseg.engine.tracking import check_trackers, flat_params, scalar_tag
from pixelseg.engine.trainer import resume, train
from pixelseg.errors import PixelsegError
from pixelseg.runs import RunFolder

ROW_KEYS = ["train_loss", "train_pixel_accuracy", "val_loss", "val_pixel_accuracy", "val_miou"]


def rows(run_dir):
    return [json.loads(line) for line in RunFolder(run_dir).metrics.read_text().splitlines()]


def tensorboard_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(RunFolder(run_dir).tensorboard), size_guidance={"images": 0})
    events.Reload()
    return events


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A private MLflow store (sqlite + artifacts under tmp_path) for one test."""
    pytest.importorskip("mlflow")  # in [all], so it is there in CI; a bare install lacks it
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative to the cwd
    from mlflow import MlflowClient

    return MlflowClient(uri)


def test_row_keys_become_tags_grouped_by_split():
    assert scalar_tag("val_miou") == "val/miou"
    assert scalar_tag("train_pixel_accuracy") == "train/pixel_accuracy"
    assert scalar_tag("lr") == "lr" and scalar_tag("time_s") == "time_s"


def test_params_spell_keys_as_overrides_do(make_cfg):
    params = flat_params(make_cfg("p", "model.width=4"))
    assert params["model.name"] == "unet" and params["model.width"] == "4"
    assert params["train.batch_size"] == "4" and "model.knobs" not in params


def test_an_unknown_tracker_is_a_config_error(make_cfg):
    with pytest.raises(PixelsegError, match="train.track: unknown tracker 'wandb'"):
        make_cfg("x", "train.track=[wandb]")


def test_a_missing_package_names_the_pip_command(make_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # importing it now raises ImportError
    with pytest.raises(PixelsegError, match=r"pip install 'pixelseg\[mlflow\]'"):
        check_trackers(["mlflow"])
    cfg = make_cfg("missing", "train.track=[mlflow]")
    with pytest.raises(PixelsegError, match="mlflow is not installed"):
        train(cfg, progress=False, log=lambda *_: None)
    assert not (Path(cfg.out_dir) / "missing").exists()  # refused before any file is written


def test_tensorboard_holds_every_epoch_the_config_and_examples(make_cfg):
    pytest.importorskip("tensorboard")
    cfg = make_cfg("tb", "train.epochs=2", "train.track=[tensorboard]")
    result = train(cfg, progress=False, log=lambda *_: None)
    events = tensorboard_events(result.run_dir)
    for key in ROW_KEYS:
        logged = events.Scalars(scalar_tag(key))
        assert [e.step for e in logged] == [r["epoch"] for r in rows(result.run_dir)]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in rows(result.run_dir)])
    assert [e.step for e in events.Scalars("lr")] == [1, 2]
    assert [e.step for e in events.Scalars("time_s")] == [1, 2]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "model.width" not in config_text and "width: 4" in config_text
    images = events.Images("examples/0")
    assert [i.step for i in images] == [1, 2]
    assert images[0].width == 3 * 32 and images[0].height == 32  # image | label | prediction
    assert len(events.Tags()["images"]) == 4  # four validation images


def test_mlflow_holds_params_metrics_images_and_artifacts(make_cfg, mlflow_store):
    cfg = make_cfg("ml", "train.epochs=2", "train.track=[mlflow]")
    result = train(cfg, progress=False, log=lambda *_: None)
    finish_run(result.run_dir, log=lambda *_: None)
    state = json.loads(RunFolder(result.run_dir).tracking.read_text())["mlflow"]
    run = mlflow_store.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "ml"
    assert run.data.params["model.width"] == "4" and run.data.params["train.epochs"] == "2"
    history = mlflow_store.get_metric_history(state["run_id"], "val_miou")
    assert [m.step for m in history] == [r["epoch"] for r in rows(result.run_dir)]
    assert [m.value for m in history] == pytest.approx(
        [r["val_miou"] for r in rows(result.run_dir)]
    )
    top = {a.path for a in mlflow_store.list_artifacts(state["run_id"])}
    assert {"config.yaml", "report.html", "checkpoints"} <= top
    saved = {a.path for a in mlflow_store.list_artifacts(state["run_id"], "checkpoints")}
    best = RunFolder(result.run_dir).best
    assert f"checkpoints/{best.name}" in saved
    assert any(p.endswith(".safetensors") for p in saved)
    assert any("example_0" in p for p in top | _all_paths(mlflow_store, state["run_id"]))


def _all_paths(client, run_id, folder=None) -> set[str]:
    out = set()
    for a in client.list_artifacts(run_id, folder):
        out.add(a.path)
        if a.is_dir:
            out |= _all_paths(client, run_id, a.path)
    return out


def test_both_at_once_and_a_resumed_run_continues_the_same_mlflow_run(make_cfg, mlflow_store):
    pytest.importorskip("tensorboard")
    cfg = make_cfg("both", "train.epochs=1", "train.track=[tensorboard, mlflow]")
    first = train(cfg, progress=False, log=lambda *_: None)
    run_id = json.loads(RunFolder(first.run_dir).tracking.read_text())["mlflow"]["run_id"]
    resume(first.run_dir, ["train.epochs=2"], progress=False, log=lambda *_: None)
    history = mlflow_store.get_metric_history(run_id, "val_miou")
    assert [m.step for m in history] == [1, 2]
    assert mlflow_store.get_run(run_id).info.status == "FINISHED"
    assert len(mlflow_store.search_runs([mlflow_store.get_run(run_id).info.experiment_id])) == 1
    assert [e.step for e in tensorboard_events(first.run_dir).Scalars("val/miou")] == [1, 2]


def test_a_failing_tracker_warns_and_training_goes_on(make_cfg, monkeypatch):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(SummaryWriter, "add_scalar", broken)
    lines = []
    cfg = make_cfg("broken", "train.epochs=2", "train.track=[tensorboard]")
    result = train(cfg, progress=False, log=lines.append)
    assert len(rows(result.run_dir)) == 2
    assert sum("TensorBoard stopped tracking this run: disk full" in x for x in lines) == 1


def test_the_cli_flag_sets_the_key():
    from pixelseg.cli.main import build_parser
    from pixelseg.cli.train import cli_overrides

    args = build_parser().parse_args(
        ["train", "--track", "tensorboard", "--track", "mlflow", "train.epochs=1"]
    )
    cfg = load_config(overrides=cli_overrides(args))
    assert cfg.train.track == ["tensorboard", "mlflow"] and cfg.train.epochs == 1
