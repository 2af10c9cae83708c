"""One pass over the training batches, the part of ``Trainer`` that runs every step: copy and
augment a batch, forward, loss and backward (accumulating gradients over micro-batches), then
the optimizer step with the lr schedule, the finiteness check every rank agrees on, clipping
and the EMA update. A non-finite loss raises ``NonFiniteLoss`` before a bad step is applied;
``_train_epoch_guarded`` rolls back and re-runs the epoch, or gives up (``guard.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import RunConfig
from ..data.transforms import Normalizer
from ..errors import PixelsegError
from ..metrics import ConfusionMatrix
from .batch_augment import BatchAugment
from .device import autocast, memory_format
from .distributed import DistInfo, any_rank, reduce_mean
from .ema import ModelEma
from .epoch_record import TrainEpoch
from .finetune import freeze_encoder_norms, group_lr
from .guard import NanGuard, NonFiniteLoss
from .inference import class_map
from .optim import grad_norm
from .schedule import lr_factor
from .timing import StepTimer
from .train_data import TrainData


class TrainingPass:
    """The training pass of a ``Trainer``, which sets these attributes (tests and benchmarks
    replace ``loss_fn`` and set ``timer``, a ``StepTimer``, on the trainer)."""

    cfg: RunConfig
    data: TrainData
    dist: DistInfo
    device: torch.device
    progress: bool
    log: Callable[..., None]
    model: nn.Module  # the bare model, whose weights are checkpointed
    ddp_model: nn.Module  # DDP's wrapper of it (the model itself in one process)
    train_model: nn.Module  # what trains: ddp_model, compiled with train.compile
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    guard: NanGuard
    ema: ModelEma | None
    normalizer: Normalizer
    batch_aug: BatchAugment | None  # with augment.on_device
    train_loader: DataLoader
    timer: StepTimer | None
    planned_epochs: int
    steps_per_epoch: int
    optim_steps_per_epoch: int
    warmup_steps: int
    total_steps: int
    _compile_checked: bool

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

    def train_one_epoch(self, epoch: int) -> TrainEpoch:
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
        confusion = ConfusionMatrix(self.data.classes.num_classes, self.device)
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
        return TrainEpoch(float(mean_loss), scores.pixel_accuracy, scores.mean_iou, lr)

    def _train_epoch_guarded(self, epoch: int) -> TrainEpoch:
        """``train_one_epoch`` with NaN handling: roll back and re-run, or raise."""
        self.guard.snapshot(self.model, self.optimizer, self.ema)
        while True:
            try:
                return self.train_one_epoch(epoch)
            except NonFiniteLoss as err:
                self.guard.handle(err, self.model, self.optimizer, self.ema, self.log)
