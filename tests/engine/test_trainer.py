"""The training loop's options on a tiny U-Net: accumulation, clipping, EMA, early stopping,
NaN handling (stop or roll back), torch.compile, timing hooks and on-device augmentation."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from pixelseg.config import load_config
from pixelseg.engine import trainer as trainer_mod
from pixelseg.engine.evaluate import EvalResult
from pixelseg.engine.schedule import lr_factor
from pixelseg.engine.sidecar import data_file, read_sidecar
from pixelseg.engine.timing import PHASES, StepTimer
from pixelseg.engine.trainer import Trainer
from pixelseg.errors import PixelsegError
from pixelseg.metrics import ConfusionMatrix


def fit(cfg, **kw):
    logs: list[str] = []
    tr = Trainer(cfg, progress=False, log=logs.append, **kw)
    return tr, tr.fit(), logs


def weights(run, tag="last"):
    return load_file(str(data_file(read_sidecar(run / "checkpoints" / f"{tag}.json"))))


def rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def fake_evaluate(mious):
    """Replaces the evaluation: the given mIoU per call; records the model evaluated."""
    seen = []

    def evaluate(model, *a, **k):
        seen.append(model)
        scores = dataclasses.replace(ConfusionMatrix(2).compute(), pixel_accuracy=0.5)
        return EvalResult(dataclasses.replace(scores, mean_iou=mious[len(seen) - 1]), loss=1.0)

    evaluate.seen = seen
    return evaluate


def nan_loss_at(tr, calls: set[int]):
    """Make the trainer's loss NaN at the given (1-based) micro-batch calls."""
    real, count = tr.loss_fn, [0]

    def loss_fn(logits, masks):
        count[0] += 1
        loss = real(logits, masks)
        return loss * float("nan") if count[0] in calls else loss

    tr.loss_fn = loss_fn


def test_accumulation_matches_one_bigger_batch(make_cfg):
    _, a, _ = fit(make_cfg("big", "train.batch_size=4"))
    _, b, _ = fit(make_cfg("acc", "train.batch_size=2", "train.accumulate=2"))
    wa, wb = weights(a.run_dir), weights(b.run_dir)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5
    assert rows(a.run_dir)[0]["lr"] == rows(b.run_dir)[0]["lr"]  # schedule counts optimizer steps


def test_clip_grad_norm_bounds_each_update(make_cfg):
    lr, clip = 0.1, 1e-4
    tr = Trainer(
        make_cfg(
            "clip",
            "train.optimizer=sgd",
            f"train.lr={lr}",
            "train.schedule=none",
            f"train.clip_grad_norm={clip}",
        ),
        progress=False,
        log=lambda *a: None,
    )
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.fit()
    after = tr.model.state_dict()
    moved = torch.cat(
        [(after[k] - before[k]).flatten() for k in before if before[k].is_floating_point()]
    )
    # Two SGD steps with momentum 0.9: at most lr * clip * (1 + 1.9).
    assert 0 < moved.norm() <= lr * clip * 2.9 * 1.001


def test_ema_is_evaluated_and_saved_as_best(make_cfg, monkeypatch):
    fake = fake_evaluate([0.1, 0.2])
    monkeypatch.setattr(trainer_mod, "evaluate", fake)
    tr, res, logs = fit(make_cfg("ema", "train.ema_decay=0.9", "train.epochs=2"))
    assert all(m is tr.ema.module for m in fake.seen)
    ckpt = res.run_dir / "checkpoints"
    best, ema, last = (
        weights(res.run_dir, "best"),
        weights(res.run_dir, "ema"),
        weights(res.run_dir),
    )
    assert all(torch.equal(best[k], ema[k]) for k in best)
    assert not all(torch.equal(best[k], last[k]) for k in best)  # last keeps the raw weights
    assert json.loads((ckpt / "best.json").read_text())["weights"] == "ema"
    assert json.loads((ckpt / "last.json").read_text())["weights"] == "raw"
    assert any("EMA 0.9" in line for line in logs)
    # Resuming restores the average and its step count.
    again = Trainer(
        load_config(res.run_dir / "config.yaml", ["train.epochs=3"]),
        resume=res.run_dir,
        progress=False,
        log=lambda *a: None,
    )
    assert again.ema.updates == tr.ema.updates == 4
    assert all(torch.equal(again.ema.state_dict()[k], ema[k]) for k in ema)


def test_early_stopping_says_why(make_cfg, monkeypatch):
    monkeypatch.setattr(trainer_mod, "evaluate", fake_evaluate([0.5, 0.6, 0.55, 0.58, 0.9]))
    _, res, logs = fit(make_cfg("es", "train.epochs=5", "train.early_stop_patience=2"))
    assert [r["epoch"] for r in rows(res.run_dir)] == [1, 2, 3, 4]
    assert res.best_epoch == 2 and res.stop_reason.startswith("early stop after epoch 4")
    assert "train.early_stop_patience=2" in logs[-1]
    last = json.loads((res.run_dir / "checkpoints" / "last.json").read_text())
    assert last["stop_reason"] == res.stop_reason


def test_a_final_pass_over_train_and_val_keeps_the_last_epoch_as_best(make_cfg, monkeypatch):
    # val scores of a model trained on val measure fit: best-by-val would pick at random
    monkeypatch.setattr(trainer_mod, "evaluate", fake_evaluate([0.5, 0.9, 0.4]))
    tr, res, logs = fit(make_cfg("final", "train.epochs=3", "data.train_split=train+val"))
    assert len(tr.train_source) == 8 + 4
    assert res.best_epoch == 3 and res.best_miou == 0.4
    assert any("includes the val split" in line for line in logs)
    torch.testing.assert_close(weights(res.run_dir, "best"), weights(res.run_dir, "last"))


def test_nan_loss_stops_at_once_without_a_poisoned_checkpoint(make_cfg):
    tr = Trainer(make_cfg("nan", "train.epochs=2"), progress=False, log=lambda *a: None)
    nan_loss_at(tr, {3})  # epoch 2, first step
    with pytest.raises(PixelsegError, match="epoch 2, step 1: the loss .* NaN/inf.*nan_rollback"):
        tr.fit()
    run = tr.run_dir
    assert [r["epoch"] for r in rows(run)] == [1]
    assert json.loads((run / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in weights(run).values())


def test_nan_rollback_halves_the_lr_and_continues(make_cfg):
    cfg = make_cfg("rb", "train.epochs=2", "train.nan_rollback=true")
    logs: list[str] = []
    tr = Trainer(cfg, progress=False, log=logs.append)
    nan_loss_at(tr, {4})  # epoch 2, step 2: the epoch is re-run from its start
    res = tr.fit()
    assert any("rolled back" in line for line in logs)
    assert tr.guard.lr_scale == 0.5 and tr.guard.retries == 1
    r = rows(res.run_dir)
    assert [x["epoch"] for x in r] == [1, 2]
    assert r[1]["lr"] == pytest.approx(0.5 * cfg.train.lr * lr_factor(3, 4, "cosine"))
    assert all(torch.isfinite(v).all() for v in weights(res.run_dir).values())
    again = Trainer(
        load_config(res.run_dir / "config.yaml", ["train.epochs=3"]),
        resume=res.run_dir,
        progress=False,
        log=lambda *a: None,
    )
    assert again.guard.lr_scale == 0.5  # the halved lr survives a resume


def test_nan_rollback_gives_up_after_the_retry_cap(make_cfg):
    tr = Trainer(
        make_cfg("cap", "train.nan_rollback=true", "train.nan_max_retries=2"),
        progress=False,
        log=lambda *a: None,
    )
    nan_loss_at(tr, set(range(2, 100)))
    with pytest.raises(PixelsegError, match="after 2 rollbacks .*nan_max_retries=2"):
        tr.fit()
    assert not (tr.run_dir / "checkpoints" / "last.json").exists()


def test_compile_runs_on_cpu(make_cfg):
    # aot_eager traces and compiles the graph (forward + backward) without C++ code generation,
    # which takes ~50 s on two cores; the inductor variant below is marked slow.
    tr, res, _ = fit(make_cfg("comp", "train.compile=true", "train.compile_backend=aot_eager"))
    assert type(tr.train_model).__name__ == "OptimizedModule"
    assert not any(k.startswith("_orig_mod") for k in weights(res.run_dir))


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(torch, "compile"), reason="this torch has no torch.compile")
@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="inductor needs a C++ compiler",
)
def test_compile_with_inductor_on_cpu(make_cfg):
    tr, res, _ = fit(make_cfg("ind", "train.compile=true", "train.epochs=2"))
    assert type(tr.train_model).__name__ == "OptimizedModule"
    # The compiled model computes what the eager one does with the same (trained) weights.
    images = tr.normalizer(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    tr.model.eval()
    with torch.no_grad():
        eager, compiled = tr.model(images), tr.train_model(images)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    losses = [r["train_loss"] for r in res.history]
    assert all(map(math.isfinite, losses)) and losses[1] < losses[0]  # and it learns


def test_step_timer_breaks_down_the_loop(make_cfg):
    tr = Trainer(make_cfg("time", "train.batch_size=2"), progress=False, log=lambda *a: None)
    tr.timer = StepTimer(tr.device, skip=1)
    tr.train_one_epoch(1)
    s = tr.timer.summary()
    assert s["timed_steps"] == 3 and set(s["phase_s"]) == set(PHASES)
    assert s["phase_s"]["forward"] > 0 and s["phase_s"]["backward"] > 0
    assert sum(s["phase_share"].values()) == pytest.approx(1.0)
    assert s["images_per_s"] > 0


def test_on_device_augmentation_trains(make_cfg):
    tr, res, logs = fit(make_cfg("dev", "augment.enabled=true", "augment.on_device=true"))
    assert tr.batch_aug is not None and tr.train_loader.dataset.transform.p is None
    assert any("augmentation on the device" in line for line in logs)
    auto, _, _ = fit(make_cfg("auto", "augment.enabled=true"))
    assert auto.batch_aug is None  # auto on CPU: per sample in the loader


def test_each_epoch_tells_the_loader_how_far_training_is(make_cfg, monkeypatch):
    from pixelseg.data.loader import EpochSampler

    seen = []
    original = EpochSampler.set_epoch

    def record(self, epoch, progress=0.0):
        seen.append((epoch, progress))
        original(self, epoch, progress)

    monkeypatch.setattr(EpochSampler, "set_epoch", record)
    cfg = make_cfg(
        "sched",
        "train.epochs=3",
        "augment.enabled=true",
        "augment.corruptions=[contrast]",
        "augment.corruption_p=0.8",
        "augment.corruption_p_final=0.0",
    )
    fit(cfg)
    assert seen == [(1, 0.0), (2, 0.5), (3, 1.0)]


def test_images_per_epoch_sets_the_epoch_length(make_cfg):
    one_pass, _, _ = fit(make_cfg("pass", "train.epochs=1", "train.batch_size=2"))
    n = len(one_pass.data.train)
    longer, res, _ = fit(
        make_cfg("long", "train.epochs=1", "train.batch_size=2", f"train.images_per_epoch={3 * n}")
    )
    assert longer.steps_per_epoch == 3 * one_pass.steps_per_epoch
    assert len(rows(res.run_dir)) == 1  # one epoch: validated once
