"""torchrun with 2 CPU processes (gloo) trains exactly what one process trains with the same
global batch: same weights, same losses and validation metrics, one set of files; resuming a
distributed run works too.

GroupNorm keeps the comparison exact (BatchNorm statistics depend on how the batch is split;
see docs/distributed.md). 5 validation images over 2 ranks checks that validation shards are
not padded: a duplicated image would change the metrics.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from pixelseg.config import load_config
from pixelseg.data.scenes import write_scenes
from pixelseg.engine.distributed import DistInfo, ShardSampler, convert_sync_bn
from pixelseg.engine.sidecar import data_file, read_sidecar
from pixelseg.engine.trainer import Trainer

ARGS = [
    "model.width=4",
    "model.depth=2",
    "model.norm=group",
    "augment.enabled=false",
    "train.global_batch_size=4",
    "train.device=cpu",
    "train.epochs=2",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-scenes")
    write_scenes(root, {"train": 8, "val": 5}, size=(32, 32), progress=False)
    return root


def launch_two(*target: str, timeout: float) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 TARGET...``, outside any torchrun of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run([*cmd, *target], capture_output=True, text=True, env=env, timeout=timeout)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    out = launch_two("-m", "pixelseg", "train", "--quiet", *args, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def single(data, out_dir, name, resume=None, extra=()):
    quiet = {"progress": False, "log": lambda *a: None}
    if resume:
        cfg = load_config(resume / "config.yaml", list(extra))
        return Trainer(cfg, resume=resume, **quiet).fit()
    cfg = load_config(
        overrides=[
            f"data.root={data}",
            f"out_dir={out_dir}",
            f"name={name}",
            "train.threads=1",
            *ARGS,
            *extra,
        ]
    )
    return Trainer(cfg, **quiet).fit()


def rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a, b):
    ra, rb = rows(a), rows(b)
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb]
    for x, y in zip(ra, rb):
        for key in ("train_loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr"):
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), key
    wa, wb = (
        load_file(str(data_file(read_sidecar(r / "checkpoints" / "last.json")))) for r in (a, b)
    )
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_two_processes_match_one(data, tmp_path):
    out = tmp_path / "runs"
    proc = torchrun(
        "--data", str(data), "--out-dir", str(out), "--name", "ddp", "--track", "tensorboard", *ARGS
    )
    assert "2 process(es)" in proc.stdout and proc.stdout.count("run folder:") == 1
    ddp = out / "ddp"
    single(data, out, "one")
    assert_same_run(ddp, out / "one")  # tracking (rank 0 draws examples) changes nothing
    if importlib.util.find_spec("tensorboard"):
        assert len(list((ddp / "tensorboard").glob("events.*"))) == 1  # rank 0 only
    assert sorted(p.name for p in out.iterdir()) == ["ddp", "one"]

    # Resume both to a third epoch: still the same run.
    torchrun("--resume", str(ddp), "train.epochs=3")
    single(data, out, "one", resume=out / "one", extra=["train.epochs=3"])
    assert_same_run(ddp, out / "one")


def test_pretrained_encoder_two_processes_match_one(data, tmp_path):
    """Frozen encoder BatchNorm uses ImageNet's statistics, not the batch's: DDP's halves of the
    batch then train exactly like the whole, with the encoder at its own lr."""
    out, extra = tmp_path / "runs", ["model.encoder=efficientnet_lite0", "train.epochs=1"]
    torchrun("--data", str(data), "--out-dir", str(out), "--name", "ddp", *ARGS, *extra)
    single(data, out, "one", extra=extra)
    assert_same_run(out / "ddp", out / "one")
    side = json.loads((out / "ddp" / "checkpoints" / "last.json").read_text())
    assert side["pretrained"]["encoder"] == "efficientnet_lite0"


EXIT_SCRIPT = """
import os, sys, time
import torch
from torch import nn
from pixelseg.engine.distributed import finish_process, init_distributed
info = init_distributed("cpu")
model = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))
model(torch.randn(2, 4)).sum().backward()
if info.rank == 1:
    time.sleep(float(sys.argv[1]))  # one rank ends late: the other used to abort at exit
print(f"rank {info.rank} done", flush=True)
finish_process(0)
"""


def test_ranks_exit_cleanly_when_one_is_late(tmp_path):
    # The gloo teardown used to run in an atexit hook, inside interpreter finalisation: with
    # DDP holding the group, a rank that ended before the other aborted ("terminate called
    # without an active exception"); see finish_process.
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT)
    out = launch_two(str(script), "1.5", timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "rank 0 done" in out.stdout and "rank 1 done" in out.stdout
    assert "terminate called" not in out.stderr


def test_validation_shards_cover_each_image_once():
    shards = [list(ShardSampler(5, r, 2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == [0, 1, 2, 3, 4]


def test_sync_bn_is_skipped_with_a_note_on_cpu():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    same, note = convert_sync_bn(model, True, torch.device("cpu"), DistInfo(0, 0, 2, 2))
    assert same is model and "needs CUDA" in note
    assert convert_sync_bn(model, True, torch.device("cpu"), DistInfo()) == (model, "")
