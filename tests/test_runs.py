"""RunFolder: the one owner of a run folder's layout, and its typed configuration."""

import doctest

import pytest

from pixelseg import runs
from pixelseg.config import RunConfig, load_config
from pixelseg.errors import PixelsegError
from pixelseg.runs import RunFolder


def test_doctest():
    assert doctest.testmod(runs).failed == 0


def test_layout(tmp_path):
    run = RunFolder(tmp_path / "r")
    rel = {
        k: getattr(run, k).relative_to(run.path).as_posix()
        for k in (
            "config_file", "metrics", "checkpoints", "last", "best", "ema", "eval_dir",
            "robustness_dir", "robustness", "consistency", "robustness_plot", "report",
            "model_summary", "skipped", "predictions", "onnx",
        )
    }  # fmt: skip
    assert rel == {
        "config_file": "config.yaml",
        "metrics": "metrics.jsonl",
        "checkpoints": "checkpoints",
        "last": "checkpoints/last.json",
        "best": "checkpoints/best.json",
        "ema": "checkpoints/ema.json",
        "eval_dir": "eval",
        "robustness_dir": "robustness",
        "robustness": "robustness/robustness.json",
        "consistency": "robustness/consistency.json",
        "robustness_plot": "robustness/robustness.png",
        "report": "report.html",
        "model_summary": "model_summary.txt",
        "skipped": "skipped.txt",
        "predictions": "predictions",
        "onnx": "export/model.onnx",
    }
    assert run.eval_result("test") == run.path / "eval" / "test.json"
    assert run.eval_result("val", tta=True) == run.path / "eval" / "val_tta.json"
    assert run.name == "r" and RunFolder(str(run.path)) == run


def test_containing_a_run_or_a_checkpoint(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.checkpoints.mkdir(parents=True)
    assert RunFolder.containing(run.path) == run
    assert RunFolder.containing(run.best) == run  # need not exist


def test_config_is_the_typed_run_config(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.has_config()
    with pytest.raises(PixelsegError, match="config.yaml"):
        run.config()
    cfg = load_config(overrides=["data.root=somewhere", "data.crop_size=[32,48]"])
    run.config_file.write_text(cfg.to_yaml())
    back = run.config()
    assert run.has_config() and isinstance(back, RunConfig)
    assert back.data.root == "somewhere" and back.data.crop_size == [32, 48]
    assert run.config(["train.epochs=7"]).train.epochs == 7
    run.config_file.write_text("data: {nonsense_key: 1}\n")
    with pytest.raises(PixelsegError, match="nonsense_key"):
        run.config()
