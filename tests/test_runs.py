"""RunFolder: the one owner of a run folder's layout, and its typed configuration. The layout is
checked by behaviour: what a real tiny run, its evaluation and report write lands where
RunFolder says, and resuming the run finds it there."""

import doctest
import json
import shutil

import pytest

from pixelseg import runs
from pixelseg.analysis.evaluation import evaluate_run, save_eval
from pixelseg.analysis.run_report import build_run_report
from pixelseg.config import RunConfig, load_config
from pixelseg.data.scenes import write_scenes
from pixelseg.engine.sidecar import data_file, read_sidecar
from pixelseg.engine.trainer import resume, train
from pixelseg.errors import PixelsegError
from pixelseg.runs import RunFolder


def test_doctest():
    assert doctest.testmod(runs).failed == 0


# A 2-level U-Net of width 4 on 32x32 scenes: one epoch takes a second on one core.
TINY = [
    "model.width=4",
    "model.depth=2",
    "model.norm=group",
    "train.batch_size=2",
    "train.threads=1",
    "train.device=cpu",
    "augment.enabled=false",
    "train.epochs=1",
    "train.ema_decay=0.9",
]


def quiet(*a, **k):
    pass


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> RunFolder:
    """A real run of one epoch (with EMA, so every checkpoint tag is written)."""
    root = tmp_path_factory.mktemp("runs")
    write_scenes(root / "data", {"train": 4, "val": 2}, size=(32, 32), progress=False)
    cfg = load_config(
        overrides=[f"data.root={root / 'data'}", f"out_dir={root / 'out'}", "name=tiny", *TINY]
    )
    return RunFolder(train(cfg, progress=False, log=quiet).run_dir)


def files_under(folder) -> set:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_a_run_writes_its_files_where_run_folder_says(tiny_run):
    run = tiny_run
    checkpoints = {run.last, run.best, run.ema}
    # Every file of the run is one RunFolder names, or a data file a sidecar there names.
    data = {data_file(read_sidecar(p), "weights") for p in checkpoints}
    data.add(data_file(read_sidecar(run.last), "optimizer"))
    assert files_under(run.path) == {run.config_file, run.metrics} | checkpoints | data
    assert all(p.parent == run.checkpoints for p in checkpoints | data)
    assert run.config().model.knobs["width"] == 4  # the typed config of the run, read back
    assert [json.loads(line)["epoch"] for line in run.metrics.read_text().splitlines()] == [1]
    assert RunFolder.containing(run.best) == run == RunFolder(str(run.path))


def test_evaluation_and_report_land_where_run_folder_says(tiny_run, tmp_path):
    run = RunFolder(shutil.copytree(tiny_run.path, tmp_path / "copy"))
    before = files_under(run.path)
    result = evaluate_run(run.path, split="val", gap=False, device="cpu", progress=False)
    assert save_eval(result, run.path) == run.eval_result("val")
    assert build_run_report(run.path, with_examples=False) == run.report
    assert files_under(run.path) - before == {run.eval_result("val"), run.report}


def test_a_resumed_run_finds_its_files(tiny_run, tmp_path):
    run = RunFolder(shutil.copytree(tiny_run.path, tmp_path / "copy"))
    first = read_sidecar(run.last)
    result = resume(run.path, ["train.epochs=2"], progress=False, log=quiet)
    assert result.run_dir == run.path and [r["epoch"] for r in result.history] == [1, 2]
    assert result.history[0] == json.loads(run.metrics.read_text().splitlines()[0])
    last = read_sidecar(run.last)
    assert (first.epoch, last.epoch) == (1, 2) and last.ema_updates == 2 * first.ema_updates


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
