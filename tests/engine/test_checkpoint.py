"""Checkpoint files: what a damaged or foreign one says (one line naming the file and what is
wrong), checkpoints of the older layout (``TAG.safetensors`` beside ``TAG.json``), and the run
folder's own errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from pixelseg.cli.main import main
from pixelseg.engine.checkpoint import load_checkpoint
from pixelseg.engine.sidecar import data_file, read_sidecar
from pixelseg.engine.trainer import Trainer
from pixelseg.errors import PixelsegError
from pixelseg.models import create_model


@pytest.fixture
def run(make_cfg):
    return Trainer(make_cfg("ck"), progress=False, log=lambda *a: None).fit().run_dir


def edit_json(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def resume_error(run, capsys, *extra) -> str:
    assert main(["train", "--quiet", "--resume", str(run), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def to_old_layout(run):
    """The layout of pixelseg before content-named files: TAG.safetensors, no records."""
    ck = run / "checkpoints"
    for tag in ("last", "best"):
        meta = read_sidecar(ck / f"{tag}.json")
        data_file(meta).rename(ck / f"{tag}.safetensors")
        if "optimizer" in meta.files:
            data_file(meta, "optimizer").rename(ck / f"{tag}.optim.safetensors")
        edit_json(ck / f"{tag}.json", lambda m: [m.pop("files"), m.pop("commit", None)])


def test_weights_of_another_shape_are_named(run):
    ck = run / "checkpoints"
    to_old_layout(run)
    other = create_model("unet", 3, depth=2, width=8, norm="group").state_dict()
    save_file({k: v.contiguous() for k, v in other.items()}, str(ck / "best.safetensors"))
    with pytest.raises(
        PixelsegError, match=r"best.safetensors: weights do not fit .*\(shape: \S+ is \("
    ):
        load_checkpoint(run)


def test_a_changed_or_truncated_weights_file_is_caught_by_its_record(run):
    path = data_file(read_sidecar(run))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PixelsegError, match="damaged or incomplete .* recorded"):
        load_checkpoint(run)


def test_a_sidecar_without_model_keys_is_named(run):
    edit_json(run / "checkpoints" / "best.json", lambda m: m["model"].pop("num_classes"))
    with pytest.raises(
        PixelsegError, match="best.json: checkpoint sidecar lacks model.num_classes"
    ):
        load_checkpoint(run)


def test_resume_names_missing_sidecar_keys(run, capsys):
    edit_json(run / "checkpoints" / "last.json", lambda m: m.pop("best_epoch"))
    assert "last.json: checkpoint sidecar lacks best_epoch" in resume_error(run, capsys)


def test_resume_with_a_truncated_optimizer_file(run, capsys):
    path = data_file(read_sidecar(run / "checkpoints" / "last.json"), "optimizer")
    path.write_bytes(path.read_bytes()[:100])
    err = resume_error(run, capsys, "train.epochs=2")
    assert path.name in err and "optimizer state file is damaged or incomplete" in err


def test_resume_with_a_truncated_optimizer_file_of_the_old_layout(run, capsys):
    to_old_layout(run)
    path = run / "checkpoints" / "last.optim.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    err = resume_error(run, capsys, "train.epochs=2")
    assert "last.optim.safetensors: cannot read the optimizer state" in err


def test_old_layout_loads_and_resumes(run, make_cfg):
    before, _ = load_checkpoint(run)
    to_old_layout(run)
    model, meta = load_checkpoint(run)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values())
    )
    cfg = make_cfg("ck", "train.epochs=2")
    result = Trainer(cfg, resume=run, progress=False, log=lambda *a: None).fit()
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert read_sidecar(run / "checkpoints" / "last.json").files  # the new layout from now


def test_out_dir_that_is_a_file(scenes, tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    code = main(
        [
            "train",
            "--quiet",
            "--data",
            str(scenes),
            "--out-dir",
            str(tmp_path / "runs"),
            "--name",
            "x",
            "model.width=4",
            "model.depth=2",
            "train.epochs=1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "runs: --out-dir (out_dir) is a file" in err and err.count("\n") == 1


def test_a_run_killed_before_its_config_can_be_started_again(make_cfg, capsys, tmp_path):
    run = tmp_path / "runs" / "early"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".config.yaml.1234.tmp").write_text("half")
    assert "stopped before it wrote its config.yaml" in resume_error(run, capsys)
    logs = []
    Trainer(make_cfg("early"), progress=False, log=logs.append).fit()  # the name is reused
    assert (run / "config.yaml").is_file() and not (run / ".config.yaml.1234.tmp").exists()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(make_cfg, tmp_path):
    tr = Trainer(make_cfg("first"), progress=False, log=lambda *a: None)  # config.yaml written
    run = tr.run_dir
    logs: list[str] = []
    cfg = make_cfg("first")
    result = Trainer(cfg, resume=run, progress=False, log=logs.append).fit()
    assert any("stopped before its first checkpoint" in line for line in logs)
    assert [r["epoch"] for r in result.history] == [1]
    with pytest.raises(PixelsegError, match="run folder exists"):  # a folder with a config stays
        Trainer(make_cfg("first"), progress=False, log=lambda *a: None)


def test_a_loaded_model_is_in_the_trainers_memory_format(run):
    """Eval, predict and export run the weights as training did: channels-last 4-D weights
    (on the CPU too, where oneDNN's NHWC convolutions are faster)."""
    model, _ = load_checkpoint(run)
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


@pytest.mark.parametrize("shows", ["metrics", "report", "eval"])
def test_a_trained_run_without_its_checkpoints_is_not_silently_trained_again(
    make_cfg, capsys, shows
):
    epochs = 2 if shows == "metrics" else 1
    cfg = make_cfg(f"done-{shows}", f"train.epochs={epochs}")
    run = Trainer(cfg, progress=False, log=lambda *a: None).fit().run_dir
    if shows == "report":
        (run / "report.html").write_text("<html></html>")
    elif shows == "eval":
        (run / "eval").mkdir()
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    metrics = (run / "metrics.jsonl").read_text()
    err = resume_error(run, capsys)
    assert "last.json: missing, but the run trained" in err
    assert {"metrics": "has rows up to epoch 2", "report": "report.html", "eval": "eval"}[
        shows
    ] in err
    assert (run / "metrics.jsonl").read_text() == metrics  # nothing was trained or rewritten
    assert not list((run / "checkpoints").iterdir())


def test_a_run_killed_in_its_first_commit_still_starts_over(make_cfg, tmp_path):
    # Epoch 1's metrics row is appended before its checkpoint: that row alone is no evidence.
    run = Trainer(make_cfg("first-row"), progress=False, log=lambda *a: None).fit().run_dir
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    assert json.loads((run / "metrics.jsonl").read_text())["epoch"] == 1
    logs: list[str] = []
    result = Trainer(make_cfg("first-row"), resume=run, progress=False, log=logs.append).fit()
    assert any("stopped before its first checkpoint" in line for line in logs)
    assert [r["epoch"] for r in result.history] == [1]


@pytest.mark.parametrize(
    "record, words",
    [
        ({"file": "/dev/zero"}, "files.weights.file '/dev/zero' is not a file name"),
        ({"file": "../../x.safetensors"}, "files.weights.file '../../x.safetensors' is not"),
        ({"file": "sub/x.safetensors"}, "is not a file name in the sidecar's folder"),
        ({"bytes": None}, "files.weights.bytes None is not a size"),
        ({"sha256": "0" * 63}, "files.weights.sha256"),
        ("x", "files.weights is not an object"),
    ],
    ids=["dev-zero", "climbs-out", "subfolder", "no-size", "bad-sha", "not-object"],
)
def test_a_sidecar_names_only_checked_files_in_its_own_folder(run, record, words):
    best = run / "checkpoints" / "best.json"

    def change(meta):
        weights = meta["files"]["weights"]
        meta["files"]["weights"] = {**weights, **record} if isinstance(record, dict) else record

    edit_json(best, change)
    with pytest.raises(PixelsegError) as e:
        load_checkpoint(run)
    assert str(e.value).startswith(f"{best}: damaged checkpoint sidecar") and words in str(e.value)


@pytest.mark.parametrize("layout", ["files", "old"])
def test_a_data_file_that_is_a_device_is_refused_unread(run, layout):
    """A symlink to /dev/zero in the checkpoint folder, as the recorded file or as the old
    layout's TAG.safetensors: refused from its stat, never read (it would fill the memory)."""
    ck = run / "checkpoints"
    if layout == "old":
        to_old_layout(run)
    weights = data_file(read_sidecar(ck / "best.json"))
    weights.unlink()
    weights.symlink_to("/dev/zero")
    with pytest.raises(PixelsegError, match="not a regular file"):
        load_checkpoint(run)
