"""The training loop: one epoch at a time, evaluate, log a row, checkpoint last and best.

Everything that can fail on the user's input (config, data, model knobs) is checked before
the run folder is created, so a bad input leaves nothing half-written. The same loop runs in
one process or under torchrun (docs/distributed.md); only rank 0 writes files or logs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..config import RunConfig
from ..data.pipeline import open_train_val, val_is_trained_on
from ..data.preflight import preflight
from ..errors import PixelsegError
from ..metrics import ConfusionMatrix
from ..models import create_model
from ..runs import RunFolder
from .budget import TimeBudget, end_of_run_seconds
from .checkpoint import Sidecar, load_checkpoint, load_optimizer_state
from .device import autocast, configure_threads, maybe_compile, memory_format, pick_device
from .distributed import (
    DistInfo,
    any_rank,
    convert_sync_bn,
    init_distributed,
    reduce_mean,
    sync_buffers,
)
from .ema import ModelEma
from .evaluate import evaluate
from .finetune import freeze_encoder_norms, group_lr, input_normalizer
from .guard import NanGuard, NonFiniteLoss, weights_finite
from .inference import class_map
from .loaders import build_loaders
from .losses import build_loss
from .optim import (
    grad_norm,
    make_optimizer,
    resolve_batch_size,
    resolve_class_weights,
    seed_everything,
)
from .run_folder import (
    HEADER,
    create_run_folder,
    format_row,
    read_history,
    read_resume_point,
    restore_commit,
    write_epoch,
)
from .schedule import lr_factor
from .tracking import Tracking, check_trackers


@dataclass
class TrainResult:
    run_dir: Path
    best_miou: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stop_reason: str = "completed"  # or why training stopped early


class Trainer:
    """Holds the pieces of one run; ``fit()`` trains to the configured number of epochs.

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
        self.dist: DistInfo = init_distributed(pick_device(t.device).type)
        self.log = log if self.dist.is_main else (lambda *a, **k: None)
        self.device = pick_device(t.device, self.dist.local_rank)
        self.threads = configure_threads(self.device, self.dist.local_world_size, t.threads)
        seed_everything(t.seed + self.dist.rank, t.deterministic)
        self.timer = None

        # 1. Everything that reads the user's input, before any file is written.
        check_trackers(t.track)
        self.train_source, self.val_source, self.classes = open_train_val(cfg.data)
        # A final pass (data.train_split=train+val) trains on val: its scores then measure
        # fit, not generalisation, so the last epoch is kept as best instead.
        self.val_in_train = val_is_trained_on(cfg.data)
        self.skipped = preflight(
            [self.train_source, self.val_source],
            skip_bad=cfg.data.skip_bad,
            progress=progress and self.dist.is_main,
        )
        nc = self.classes.num_classes
        self.batch_size = resolve_batch_size(
            t.batch_size, t.global_batch_size, self.dist.world_size, t.accumulate
        )
        self.model = create_model(
            cfg.model.name, nc, 3, load_weights=resume is None, **cfg.model.knobs
        )
        weights = resolve_class_weights(cfg, self.train_source)
        self.loss_fn = build_loss(t.loss, nc, weights).to(self.device)
        self.eval_loss_fn = build_loss("ce", nc).to(self.device)
        self.start_epoch, self.best_miou, self.best_epoch = 1, -1.0, 0
        self.history: list[dict] = []
        resume_meta = None
        if resume is not None:
            resume_meta = read_resume_point(Path(resume), self.log)
        # What the encoder's weights came from (source, sha256), for every sidecar of the run.
        self.pretrained = self.model.pixelseg_pretrained
        if resume_meta is not None:
            self.model, _ = load_checkpoint(resume_meta)
            self.pretrained = resume_meta.pretrained
        self.normalizer = input_normalizer(self.model)
        self.model, note = convert_sync_bn(self.model, t.sync_bn, self.device, self.dist)
        if note:
            self.log(note)
        self.model = self.model.to(self.device, memory_format=memory_format(self.device))
        self.optimizer = make_optimizer(self.model, cfg)
        self.guard = NanGuard(t.nan_rollback, t.nan_max_retries, t.lr)
        if resume_meta is not None:
            load_optimizer_state(self.optimizer, resume_meta)
            self.start_epoch = resume_meta.epoch + 1
            self.best_miou, self.best_epoch = resume_meta.best_miou, resume_meta.best_epoch
            if resume_meta.lr_scale is not None:  # sidecars before NaN rollback lack it
                self.guard.lr_scale = resume_meta.lr_scale
            if self.budget is not None:  # continue the schedule the budget had laid out
                self.planned_epochs = resume_meta.planned_epochs or t.epochs
        self.ddp_model: nn.Module = self.model
        if self.dist.enabled:  # DDP broadcasts rank 0's weights here: every rank starts equal
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.ema = ModelEma(self.model, t.ema_decay) if t.ema_decay > 0 else None
        if self.ema is not None and resume_meta is not None:
            committed = (resume_meta.commit or {}).get("ema")
            ema_json = RunFolder(resume).ema
            # The average of the same commit as ``last`` (ema.json may be an epoch ahead).
            self.ema.resume(
                Sidecar.from_dict(committed, ema_json) if committed else ema_json, self.log
            )
        self.train_model = maybe_compile(self.ddp_model, t.compile, t.compile_backend)
        self._compile_checked = not t.compile

        # 2. Loaders (and, with augment.on_device, the batched augmentation).
        loaders = build_loaders(
            cfg, self.train_source, self.val_source, self.batch_size, self.device, self.dist
        )
        self.train_loader, self.val_loader = loaders.train, loaders.val
        self.batch_aug = loaders.batch_augment
        steps = len(self.train_loader)
        if t.max_steps_per_epoch:
            steps = min(steps, t.max_steps_per_epoch)
        if steps < 1:
            raise PixelsegError(f"{cfg.data.root}: the training split has no batches")
        self.steps_per_epoch = steps  # loader batches (micro-batches)
        self.optim_steps_per_epoch = -(-steps // t.accumulate)
        self.total_steps = self.optim_steps_per_epoch * self.planned_epochs
        self.warmup_steps = int(t.warmup_epochs * self.optim_steps_per_epoch)

        # 3. The run folder (rank 0 creates it; everyone learns its name or its error).
        if resume is not None:
            self.run_dir = Path(resume)
            if resume_meta is not None and self.dist.is_main:
                restore_commit(self.run_dir, resume_meta, self.log)
            self.history = read_history(
                RunFolder(self.run_dir).metrics, self.start_epoch, rewrite=self.dist.is_main
            )
        else:
            self.run_dir = create_run_folder(cfg, self.dist, self.skipped)
        self.tracking = Tracking(
            t.track if self.dist.is_main else (),
            self.run_dir,
            cfg,
            self.classes,
            self.val_source,
            self.start_epoch,
            self.log,
        )

    def _meta(self, epoch: int, row: dict) -> dict:
        return {
            "epoch": epoch,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "classes": self.classes.to_dict(),
            "normalization": self.normalizer.to_dict(),
            **({"pretrained": self.pretrained} if self.pretrained else {}),
            "resize": self.cfg.data.resize,
            "lr_scale": self.guard.lr_scale,
            "metrics": {k: v for k, v in row.items() if k != "epoch"},
            "ema_updates": self.ema.updates if self.ema else 0,
            "weights": "ema" if self.ema else "raw",
            "planned_epochs": self.planned_epochs,
        }

    def _to_device(self, images: torch.Tensor, masks: torch.Tensor):
        """Copy, augment (on-device path) and normalise one batch."""
        images = images.to(self.device, non_blocking=True)
        masks = masks.to(self.device, non_blocking=True)
        if self.timer is not None:
            self.timer.lap("data")
        if self.batch_aug is not None:
            images, masks = self.batch_aug(images, masks)
        images = self.normalizer(images).contiguous(memory_format=memory_format(self.device))
        if self.timer is not None:
            self.timer.lap("augment")
        return images, masks

    def _forward_backward(self, images, masks, scale: float, sync: bool):
        """Forward, loss, backward of one micro-batch; DDP all-reduces only when ``sync``."""
        ctx = contextlib.nullcontext()
        if self.dist.enabled and not sync:
            ctx = self.ddp_model.no_sync()
        try:
            with ctx:
                with autocast(self.device):
                    logits = self.train_model(images)
                loss = self.loss_fn(logits.float(), masks)
                if self.timer is not None:
                    self.timer.lap("forward")
                (loss * scale).backward()
        except Exception as e:
            if self._compile_checked:
                raise
            # torch.compile compiles lazily, at the first step: name the key that caused it.
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise PixelsegError(
                f"train.compile=true: torch.compile failed ({type(e).__name__}: {first}); set "
                f"train.compile=false, or train.compile_backend=aot_eager if no C++ compiler is "
                f"installed"
            ) from e
        self._compile_checked = True
        if self.timer is not None:
            self.timer.lap("backward")
        return logits, loss.detach()

    def _optimizer_step(
        self, params: list, epoch: int, step: int, bad: torch.Tensor, where: str
    ) -> float:
        """Schedule the lr, check finiteness (all ranks agree), clip, step, update the EMA."""
        t = self.cfg.train
        lr = (
            t.lr
            * self.guard.lr_scale
            * lr_factor(step, self.total_steps, t.schedule, self.warmup_steps)
        )
        gnorm = grad_norm(params, t.clip_grad_norm)
        # One host sync per optimizer step: the price of never applying a bad step.
        if any_rank(bad | ~torch.isfinite(gnorm.to(self.device)), self.dist):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(where, float(gnorm))
        for group in self.optimizer.param_groups:
            group["lr"] = group_lr(group, lr, epoch, t)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        if self.timer is not None:
            self.timer.lap("optimizer")
        return lr

    def train_one_epoch(self, epoch: int) -> dict:
        """One pass over the training loader; raises NonFiniteLoss before a bad step is applied."""
        t, timer = self.cfg.train, self.timer
        self.train_model.train()
        freeze_encoder_norms(self.model, t)
        # 0 at the first epoch, 1 at the last planned one (re-fitted under a time budget).
        progress = (epoch - 1) / max(self.planned_epochs - 1, 1)
        self.train_loader.sampler.set_epoch(epoch, progress)
        if self.batch_aug is not None:
            self.batch_aug.set_epoch(epoch, self.dist.rank, progress)
        params = [p for p in self.model.parameters() if p.requires_grad]
        # The training batches' confusion matrix (no host sync per step): train accuracy and
        # train mIoU, which the overfitting diagnosis sets against val's.
        confusion = ConfusionMatrix(self.classes.num_classes, self.device)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        bad = torch.zeros((), device=self.device, dtype=torch.bool)
        acc, n_all = t.accumulate, self.steps_per_epoch
        step0 = (epoch - 1) * self.optim_steps_per_epoch
        lr, n = t.lr * self.guard.lr_scale, 0
        self.optimizer.zero_grad(set_to_none=True)
        if timer is not None:
            timer.start()
        with tqdm(
            total=n_all,
            desc=f"epoch {epoch}",
            leave=False,
            unit="batch",
            disable=not (self.progress and self.dist.is_main),
        ) as bar:
            for n, (images, masks) in enumerate(self.train_loader, 1):
                k, pos = divmod(n - 1, acc)  # optimizer step in this epoch, place in its window
                window = min(acc, n_all - k * acc)  # the epoch's last window may be shorter
                images, masks = self._to_device(images, masks)
                last = pos == window - 1
                logits, loss = self._forward_backward(images, masks, 1.0 / window, last)
                bad |= ~torch.isfinite(loss)
                loss_sum += loss.double()
                if last:
                    lr = self._optimizer_step(
                        params, epoch, step0 + k, bad, f"epoch {epoch}, step {n}"
                    )
                confusion.update(class_map(logits.detach()), masks)
                bar.update()
                if n % 10 == 0:
                    bar.set_postfix(loss=f"{loss_sum.item() / n:.4f}")
                if timer is not None:
                    timer.end_step(images.shape[0])
                if n >= n_all:
                    break
        mean_loss = reduce_mean(loss_sum / max(n, 1), self.dist)
        confusion.all_reduce()
        scores = confusion.compute()
        return {
            "loss": float(mean_loss),
            "pixel_accuracy": scores.pixel_accuracy,
            "miou": scores.mean_iou,
            "lr": lr,
        }

    def _train_epoch_guarded(self, epoch: int) -> dict:
        """``train_one_epoch`` with NaN handling: roll back and re-run, or raise."""
        self.guard.snapshot(self.model, self.optimizer, self.ema)
        while True:
            try:
                return self.train_one_epoch(epoch)
            except NonFiniteLoss as err:
                self.guard.handle(err, self.model, self.optimizer, self.ema, self.log)

    def _refit_epochs(self, epoch: int, epoch_seconds: float, val_seconds: float) -> None:
        """Set the planned epochs (and with them the lr schedule) to what the budget allows."""
        self.budget.record(epoch_seconds)
        end = end_of_run_seconds(val_seconds, len(self.val_source), len(self.train_source))
        fit = self.budget.epochs_that_fit(epoch, end)
        if fit != self.planned_epochs:
            self.log(
                f"time budget: {fit} epochs fit (epoch {epoch_seconds:.0f} s, final evaluation "
                f"~{end:.0f} s, {self.budget.elapsed() / 60:.1f} of "
                f"{self.budget.seconds / 60:g} min spent)"
            )
            self.planned_epochs = fit
            self.total_steps = self.optim_steps_per_epoch * fit

    def fit(self) -> TrainResult:
        t0, t = time.time(), self.cfg.train
        eval_model = self.ema.module if self.ema is not None else self.model
        self.log(f"run folder: {self.run_dir}")
        self.log(
            f"{len(self.train_source)} train / {len(self.val_source)} val images, "
            f"{self.classes.num_classes} classes, model {self.cfg.model.name}, "
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
        if self.val_in_train:
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
                self.classes.num_classes,
                self.device,
                self.eval_loss_fn,
                model_size=self.cfg.data.resize,  # scored at the labels' size, as eval does
            )
            val_seconds = time.time() - tv
            row = {
                "epoch": epoch,
                "train_loss": tr["loss"],
                "train_pixel_accuracy": tr["pixel_accuracy"],
                "train_miou": tr["miou"],
                "val_loss": val.loss,
                "val_pixel_accuracy": val.scores.pixel_accuracy,
                "val_miou": val.scores.mean_iou,
                "lr": tr["lr"],
                "time_s": time.time() - te,
            }
            self.history.append(row)
            improved = self.val_in_train or val.scores.mean_iou > self.best_miou
            if improved:
                self.best_miou, self.best_epoch = val.scores.mean_iou, epoch
            patience = t.early_stop_patience
            if patience and epoch - self.best_epoch >= patience and epoch < self.planned_epochs:
                stop_reason = (
                    f"early stop after epoch {epoch}: val mIoU has not improved for "
                    f"{epoch - self.best_epoch} epochs (train.early_stop_patience="
                    f"{patience}); best {self.best_miou:.4f} at epoch {self.best_epoch}"
                )
            if self.dist.is_main:
                self.log(format_row(row) + ("  *" if improved else ""))
                meta = {**self._meta(epoch, row), "stop_reason": stop_reason}
                write_epoch(
                    self.run_dir,
                    row,
                    meta,
                    self.model,
                    self.optimizer,
                    self.ema.module if self.ema else None,
                    improved,
                )
                self.tracking.log_epoch(row, eval_model, self.normalizer, self.device)
            if self.on_epoch is not None:
                self.on_epoch(row)
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
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    if not run.has_config():
        if run.checkpoints.is_dir():
            raise PixelsegError(
                f"{run_dir}: stopped before it wrote its config.yaml, so there is nothing to "
                f"resume; train again with --name {run_dir.name} (the empty folder is reused)"
            )
        raise PixelsegError(f"{run_dir}: not a run folder (no config.yaml)")
    cfg = run.config(overrides)
    return Trainer(cfg, resume=run_dir, progress=progress, log=log).fit()


__all__ = ["Trainer", "TrainResult", "train", "resume", "seed_everything", "make_optimizer"]
