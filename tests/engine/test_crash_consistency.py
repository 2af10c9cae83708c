"""A run killed at any instant of its file writes resumes to exactly the run it would have been.

A deterministic 3-epoch run (EMA on; epoch 2 does not improve, so ``best`` is carried over a
commit) is killed at every crash point of engine/faults.py in turn, inside and after each write
(config, metrics row, every checkpoint file and sidecar, the clean-up), with ``os._exit(137)``
in a forked process: no clean-up runs, as with kill -9 (every 7th is killed again while it
resumes). Each is then resumed (or, killed before
its config.yaml, started again under the same name) and compared bit for bit with an
uninterrupted run: last, EMA and best weights, optimizer tensors and state, sidecars and
metrics.jsonl (time fields aside), and the files left in checkpoints/.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import traceback

import pytest
import torch
from safetensors.torch import load_file

from pixelseg.config import load_config
from pixelseg.engine import faults
from pixelseg.engine import trainer as trainer_mod
from pixelseg.engine.checkpoint import load_checkpoint
from pixelseg.engine.sidecar import Sidecar, data_file, read_sidecar
from pixelseg.engine.trainer import Trainer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked processes"),
]

MIOU = {1: 0.3, 2: 0.2, 3: 0.4}
ARGS = ("train.epochs=3", "train.deterministic=true", "train.ema_decay=0.9", "data.num_workers=0")


def quiet(*a, **k):
    pass


@pytest.fixture
def scripted(monkeypatch):
    """The val mIoU of each epoch is MIOU[epoch] (the rest of the evaluation is real)."""
    current = {}
    real_train, real_evaluate = Trainer.train_one_epoch, trainer_mod.evaluate

    def train_one_epoch(self, epoch):
        current["epoch"] = epoch
        return real_train(self, epoch)

    def evaluate(*a, **k):
        real = real_evaluate(*a, **k)
        return dataclasses.replace(
            real, scores=dataclasses.replace(real.scores, mean_iou=MIOU[current["epoch"]])
        )

    monkeypatch.setattr(Trainer, "train_one_epoch", train_one_epoch)
    monkeypatch.setattr(trainer_mod, "evaluate", evaluate)


def in_child(fn, crash_at: int | None = None) -> int:
    """Run ``fn`` in a forked process, killed at crash point ``crash_at``; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            faults.reset()
            os.environ.pop(faults.ENV, None)
            if crash_at:
                os.environ[faults.ENV] = str(crash_at)
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def timeless(meta: Sidecar) -> dict:
    out = {k: v for k, v in meta.to_dict().items() if k not in ("files", "commit")}
    out["metrics"] = {k: v for k, v in (meta.metrics or {}).items() if k != "time_s"}
    return out


def snapshot(run) -> dict:
    ck = run / "checkpoints"
    side = {tag: read_sidecar(ck / f"{tag}.json") for tag in ("last", "best", "ema")}
    # best.json is the committed one
    assert side["last"].commit["best"] == side["best"].to_dict()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "tensors": {
            "last": load_file(str(data_file(side["last"]))),
            "optimizer": load_file(str(data_file(side["last"], "optimizer"))),
            "best": load_file(str(data_file(side["best"]))),
            "ema": load_file(str(data_file(side["ema"]))),
        },
        "sidecars": {tag: timeless(m) for tag, m in side.items()},
        "metrics": [{k: v for k, v in r.items() if k != "time_s"} for r in rows],
        "files": sorted(re.sub(r"-[0-9a-f]{6}\.", "-X.", p.name) for p in ck.iterdir()),
    }


def assert_identical(a: dict, b: dict, where: str) -> None:
    assert a["metrics"] == b["metrics"], where
    assert a["sidecars"] == b["sidecars"], where
    assert a["files"] == b["files"], where
    for tag, tensors in a["tensors"].items():
        other = b["tensors"][tag]
        assert tensors.keys() == other.keys(), (where, tag)
        for key, value in tensors.items():
            assert value.dtype == other[key].dtype and torch.equal(value, other[key]), (
                where,
                tag,
                key,
            )


def test_a_run_killed_anywhere_resumes_bit_for_bit(make_cfg, scripted, tmp_path):
    def train(name):
        return lambda: Trainer(make_cfg(name, *ARGS), progress=False, log=quiet).fit()

    def resume(name):
        def run_it():
            run = tmp_path / "runs" / name
            if not (run / "config.yaml").is_file():  # killed while starting: reuse the name
                return train(name)()
            cfg = load_config(run / "config.yaml")
            return Trainer(cfg, resume=run, progress=False, log=quiet).fit()

        return run_it

    # Pay the first run's one-off costs (imports, caches) once, in the parent of every fork.
    Trainer(make_cfg("warm-up"), progress=False, log=quiet)
    assert in_child(train("ref")) == 0
    reference = snapshot(tmp_path / "runs" / "ref")
    assert reference["sidecars"]["best"]["epoch"] == 3 and reference["metrics"][2]["epoch"] == 3

    points, ahead, resumed_from_scratch, twice = 0, 0, 0, 0
    for n in range(1, 200):
        name = f"k{n}"
        code = in_child(train(name), crash_at=n)
        if code == 0:  # the run finished before reaching crash point n: all were tried
            break
        assert code == 137, f"crash point {n}: exit {code}"
        points += 1
        run = tmp_path / "runs" / name
        ck = run / "checkpoints"
        if (ck / "best.json").is_file():  # what pixelseg.load sees is complete at any instant
            load_checkpoint(run)
            if (ck / "last.json").is_file():
                last_epoch = json.loads((ck / "last.json").read_text())["epoch"]
                ahead += json.loads((ck / "best.json").read_text())["epoch"] > last_epoch
        resumed_from_scratch += not (ck / "last.json").is_file()
        if n % 7 == 0:  # the resume is killed too (in restoring the commit or its first writes)
            code = in_child(resume(name), crash_at=3)
            assert code in (0, 137), f"resume after crash point {n}: exit {code}"
            twice += code == 137
        assert in_child(resume(name)) == 0, f"resume after crash point {n} failed"
        assert_identical(snapshot(run), reference, f"crash point {n}")
    print(
        f"{points} crash points, each resumed bit for bit ({ahead} with best.json ahead, "
        f"{resumed_from_scratch} before the first checkpoint, {twice} killed again in the resume)"
    )
    assert points >= 40 and ahead >= 2 and resumed_from_scratch >= 5 and twice >= 4
