"""The training loop: one epoch at a time, evaluate, log a row, checkpoint last and best.

``Trainer.__init__`` reads in order: the data (``TrainData``) and the resume point, then the
model, loss, optimiser and loaders, then the run folder: a new one, or the resumed one, with one
restore step (``_restore``). Everything that can fail on the user's input (config, data, model
knobs) is checked before the run folder is created, so a bad input leaves nothing half-written.
The step-by-step training pass is ``training_pass.py``; the epoch's row is ``EpochRow``. The
same loop runs in one process or under torchrun (docs/distributed.md); only rank 0 writes files
or logs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..config import RunConfig
from ..errors import PixelsegError
from ..models import create_model
from ..runs import RunFolder
from .budget import TimeBudget, end_of_run_seconds
from .checkpoint import load_checkpoint, load_optimizer_state
from .device import maybe_compile, memory_format
from .distributed import convert_sync_bn, start_process, sync_buffers
from .ema import ModelEma
from .epoch_record import HEADER, EpochRow
from .evaluate import evaluate
from .finetune import freeze_encoder_layers, input_normalizer
from .guard import NanGuard, weights_finite
from .loaders import build_loaders
from .losses import build_loss
from .optim import make_optimizer, resolve_batch_size, seed_everything
from .run_folder import (
    create_run_folder,
    read_history,
    read_resume_point,
    restore_commit,
    resume_config,
    write_epoch,
)
from .sidecar import Sidecar
from .tracking import Tracking, check_trackers
from .train_data import TrainData, open_train_data
from .training_pass import TrainingPass


@dataclass
class TrainResult:
    run_dir: Path
    best_miou: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stop_reason: str = "completed"  # or why training stopped early
    # The configuration it trained with (a resume's overrides applied): what comes after
    # training (``finish_run``) takes it from here instead of parsing config.yaml again.
    config: RunConfig | None = None


class Trainer(TrainingPass):
    """Holds the pieces of one run; ``fit()`` trains to the configured number of epochs, one
    pass over the training batches (``TrainingPass.train_one_epoch``) then validation each.

    Set ``trainer.timer = StepTimer(device)`` (engine/timing.py) before ``fit()`` or
    ``train_one_epoch()`` for a step-time breakdown; it is None, and costs nothing, by default.
    """

    def __init__(
        self,
        cfg: RunConfig,
        resume: str | Path | None = None,
        progress: bool = True,
        log=print,
        on_epoch=None,
        started: float | None = None,
    ) -> None:
        """``on_epoch(row)`` is called after each epoch's evaluation with the metrics row;
        it may raise to stop training (a tuner pruning a trial). ``started`` (a ``time.time()``)
        is when a time budget's clock started; default now (the CLI passes its own start, so
        planning counts too)."""
        self.cfg, self.progress, self.on_epoch = cfg, progress, on_epoch
        t = cfg.train
        minutes = t.time_budget_minutes
        self.budget = (
            TimeBudget(60.0 * minutes, started=started or time.time()) if minutes else None
        )
        self.planned_epochs = t.epochs  # a time budget re-fits it after every epoch
        self.dist, self.device, self.threads = start_process(t.device, t.threads)
        self.log = log if self.dist.is_main else (lambda *a, **k: None)
        seed_everything(t.seed + self.dist.rank, t.deterministic)
        self.timer = None

        # 1. What reads the user's input, before any file is written: the data, the resume point.
        check_trackers(t.track)
        self.data: TrainData = open_train_data(cfg, progress=progress and self.dist.is_main)
        point = read_resume_point(Path(resume), self.log) if resume is not None else None
        self.batch_size = resolve_batch_size(
            t.batch_size, t.global_batch_size, self.dist.world_size, t.accumulate
        )

        # 2. The model (with the resume point's weights), loss, optimiser, loaders.
        nc = self.data.classes.num_classes
        if point is None:  # a new run, or a resumed one that never wrote a checkpoint: start over
            self.model = create_model(cfg.model.name, nc, 3, **cfg.model.knobs)
            self.pretrained = self.model.pixelseg_pretrained  # recorded in every sidecar
        else:
            self.model, _ = load_checkpoint(point)
            self.pretrained = point.pretrained
        self.normalizer = input_normalizer(self.model)
        self.model, note = convert_sync_bn(self.model, t.sync_bn, self.device, self.dist)
        if note:
            self.log(note)
        self.model = self.model.to(self.device, memory_format=memory_format(self.device))
        self.loss_fn = build_loss(t.loss, nc, self.data.class_weights).to(self.device)
        self.eval_loss_fn = build_loss("ce", nc).to(self.device)
        freeze_encoder_layers(self.model, t.encoder_frozen_stride)
        self.optimizer = make_optimizer(self.model, cfg)
        self.guard = NanGuard(t.nan_rollback, t.nan_max_retries, t.lr)
        self.ddp_model: nn.Module = self.model
        if self.dist.enabled:  # DDP broadcasts rank 0's weights here: every rank starts equal
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.ema = ModelEma(self.model, t.ema_decay) if t.ema_decay > 0 else None
        self.train_model = maybe_compile(self.ddp_model, t.compile, t.compile_backend)
        self._compile_checked = not t.compile
        # With augment.on_device, the batched augmentation comes with the loaders.
        loaders = build_loaders(
            cfg, self.data.train, self.data.val, self.batch_size, self.device, self.dist
        )
        self.train_loader, self.val_loader = loaders.train, loaders.val
        self.batch_aug = loaders.batch_augment
        batches = len(self.train_loader)
        steps = min(batches, t.max_steps_per_epoch or batches)
        if steps < 1:
            raise PixelsegError(f"{cfg.data.root}: the training split has no batches")
        self.steps_per_epoch = steps  # loader batches (micro-batches)
        self.optim_steps_per_epoch = -(-steps // t.accumulate)
        self.warmup_steps = int(t.warmup_epochs * self.optim_steps_per_epoch)

        # 3. The run folder: a new one, or the resumed one, restored to its last checkpoint.
        self.start_epoch, self.best_miou, self.best_epoch = 1, -1.0, 0
        self.history: list[dict] = []
        if resume is None:
            self.run_dir = create_run_folder(cfg, self.dist, self.data.skipped)
        else:
            self.run_dir = Path(resume)
            if point is not None:
                self._restore(point)
            self.history = read_history(
                RunFolder(self.run_dir).metrics, self.start_epoch, rewrite=self.dist.is_main
            )
        self.tracking = Tracking(
            t.track if self.dist.is_main else (),
            self.run_dir,
            cfg,
            self.data.classes,
            self.data.val,
            self.start_epoch,
            self.log,
        )

    def _restore(self, point: Sidecar) -> None:
        """Continue from a resume point (the last complete checkpoint, whose weights the model
        has): the optimiser, the epoch counters, the NaN guard's lr scale, the time budget's
        plan and the weight average; rank 0 puts the checkpoints back to that commit."""
        load_optimizer_state(self.optimizer, point)
        self.start_epoch = point.epoch + 1
        self.best_miou, self.best_epoch = point.best_miou, point.best_epoch
        if point.lr_scale is not None:  # sidecars before NaN rollback lack it
            self.guard.lr_scale = point.lr_scale
        if self.budget is not None:  # continue the schedule the budget had laid out
            self.planned_epochs = point.planned_epochs or self.cfg.train.epochs
        if self.ema is not None:
            committed = (point.commit or {}).get("ema")
            ema_json = RunFolder(self.run_dir).ema
            # The average of the same commit as ``last`` (ema.json may be an epoch ahead).
            self.ema.resume(
                Sidecar.from_dict(committed, ema_json) if committed else ema_json, self.log
            )
        if self.dist.is_main:
            restore_commit(self.run_dir, point, self.log)

    @property
    def train_source(self):
        return self.data.train

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the planned run: the lr schedule's length."""
        return self.optim_steps_per_epoch * self.planned_epochs

    def _meta(self, row: EpochRow, stop_reason: str) -> dict:
        """What the epoch's checkpoints record besides the model (their sidecars' keys)."""
        return {
            "epoch": row.epoch,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "classes": self.data.classes.to_dict(),
            "normalization": self.normalizer.to_dict(),
            **({"pretrained": self.pretrained} if self.pretrained else {}),
            "resize": self.cfg.data.resize,
            "lr_scale": self.guard.lr_scale,
            "metrics": {k: v for k, v in row.to_dict().items() if k != "epoch"},
            "ema_updates": self.ema.updates if self.ema else 0,
            "weights": "ema" if self.ema else "raw",
            "planned_epochs": self.planned_epochs,
            "stop_reason": stop_reason,
        }

    def _refit_epochs(self, epoch: int, epoch_seconds: float, val_seconds: float) -> None:
        """Set the planned epochs (and with them the lr schedule) to what the budget allows."""
        self.budget.record(epoch_seconds)
        end = end_of_run_seconds(val_seconds, len(self.data.val), len(self.data.train))
        fit = self.budget.epochs_that_fit(epoch, end)
        if fit != self.planned_epochs:
            self.log(
                f"time budget: {fit} epochs fit (epoch {epoch_seconds:.0f} s, final evaluation "
                f"~{end:.0f} s, {self.budget.elapsed() / 60:.1f} of "
                f"{self.budget.seconds / 60:g} min spent)"
            )
            self.planned_epochs = fit  # and with it total_steps, the lr schedule's length

    def fit(self) -> TrainResult:
        t0, t = time.time(), self.cfg.train
        eval_model = self.ema.module if self.ema is not None else self.model
        self.log(f"run folder: {self.run_dir}")
        self.log(
            f"{len(self.data.train)} train / {len(self.data.val)} val images, "
            f"{self.data.classes.num_classes} classes, model {self.cfg.model.name}, "
            f"device {self.device}, {self.steps_per_epoch} steps/epoch"
        )
        where = (
            "off"
            if not self.cfg.augment.enabled
            else "on the device (batched)"
            if self.batch_aug
            else "per sample in the loader"
        )
        self.log(
            f"batch {self.batch_size} x {self.dist.world_size} process(es) x {t.accumulate} "
            f"accumulated = {self.batch_size * self.dist.world_size * t.accumulate} images "
            f"per optimizer step; augmentation {where}"
            + (f"; EMA {t.ema_decay} (validated and saved as best)" if self.ema else "")
        )
        if self.data.val_in_train:
            self.log(
                f"warning: data.train_split={self.cfg.data.train_split} includes the val split: "
                "val scores are not held out, and the last epoch is saved as best"
            )
        self.log(HEADER)
        stop_reason = "completed"
        if self.budget is not None:
            self.budget.spent_before = sum(r.get("time_s", 0.0) for r in self.history)
            self.log(
                f"time budget {t.time_budget_minutes:g} min: {self.planned_epochs} epochs to "
                "start with, re-fitted to the measured epoch time after each epoch"
            )
        try:
            stop_reason = self._epochs(eval_model, stop_reason)
        except BaseException as e:
            self.tracking.close("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        self.tracking.close()
        return TrainResult(
            self.run_dir,
            self.best_miou,
            self.best_epoch,
            self.history,
            time.time() - t0,
            stop_reason,
            self.cfg,
        )

    def _epochs(self, eval_model: nn.Module, stop_reason: str) -> str:
        """Train, validate, log and checkpoint each epoch; returns why training stopped."""
        t = self.cfg.train
        epoch = self.start_epoch
        while epoch <= self.planned_epochs:
            te = time.time()
            tr = self._train_epoch_guarded(epoch)
            sync_buffers(self.model, self.dist)
            if self.ema is not None:
                sync_buffers(self.ema.module, self.dist)
            if not weights_finite(self.model):  # never checkpoint poisoned weights
                raise PixelsegError(
                    f"epoch {epoch}: the weights became NaN/inf; lower train.lr "
                    f"or set train.clip_grad_norm. No checkpoint was written."
                )
            tv = time.time()
            val = evaluate(
                eval_model,
                self.val_loader,
                self.normalizer,
                self.data.classes.num_classes,
                self.device,
                self.eval_loss_fn,
                model_size=self.cfg.data.resize,  # scored at the labels' size, as eval does
            )
            val_seconds = time.time() - tv
            row = EpochRow.of(epoch, tr, val, time.time() - te)
            self.history.append(row.to_dict())
            improved = self.data.val_in_train or row.val_miou > self.best_miou
            if improved:
                self.best_miou, self.best_epoch = row.val_miou, epoch
            patience = t.early_stop_patience
            if patience and epoch - self.best_epoch >= patience and epoch < self.planned_epochs:
                stop_reason = (
                    f"early stop after epoch {epoch}: val mIoU has not improved for "
                    f"{epoch - self.best_epoch} epochs (train.early_stop_patience="
                    f"{patience}); best {self.best_miou:.4f} at epoch {self.best_epoch}"
                )
            if self.dist.is_main:
                self.log(row.line() + ("  *" if improved else ""))
                write_epoch(
                    self.run_dir,
                    row.to_dict(),
                    self._meta(row, stop_reason),
                    self.model,
                    self.optimizer,
                    self.ema.module if self.ema else None,
                    improved,
                )
                self.tracking.log_epoch(row.to_dict(), eval_model, self.normalizer, self.device)
            if self.on_epoch is not None:
                self.on_epoch(row.to_dict())
            if stop_reason != "completed":
                self.log(stop_reason)
                break
            if self.budget is not None:
                self._refit_epochs(epoch, time.time() - te, val_seconds)
            epoch += 1
        return stop_reason


def train(
    cfg: RunConfig, progress: bool = True, log=print, on_epoch=None, started: float | None = None
) -> TrainResult:
    """Train a model as configured and return where the run went.

    >>> from pixelseg.config import load_config
    >>> cfg = load_config(overrides=["data.root=data/scenes", "train.epochs=5"])  # doctest: +SKIP
    >>> result = train(cfg)  # doctest: +SKIP
    """
    return Trainer(cfg, progress=progress, log=log, on_epoch=on_epoch, started=started).fit()


def resume(
    run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True, log=print
) -> TrainResult:
    """Continue a run from its last checkpoint; overrides may extend it (``train.epochs=60``)."""
    cfg = resume_config(Path(run_dir), overrides)
    return Trainer(cfg, resume=run_dir, progress=progress, log=log).fit()
