"""The training loop: one epoch at a time, evaluate, log a row, checkpoint last and best.

Everything that can fail on the user's input (config, data, model knobs) is checked before
the run folder is created, so a bad input leaves nothing half-written.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import RunConfig, load_config
from ..data.imageio import atomic_write_text
from ..data.loader import build_loader
from ..data.pipeline import eval_dataset, open_train_val, train_dataset
from ..data.transforms import Normalizer
from ..errors import PixelsegError
from ..metrics import ConfusionMatrix
from ..models import create_model
from .checkpoint import load_checkpoint, load_optimizer_state, read_sidecar, save_checkpoint
from .device import autocast, configure_threads, memory_format, pick_device
from .distributed import DistInfo, broadcast_object, init_distributed, reduce_mean
from .evaluate import evaluate
from .losses import build_loss
from .schedule import lr_factor



@dataclass
class TrainResult:
    run_dir: Path
    best_miou: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def make_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay)


def resolve_class_weights(cfg: RunConfig, train_source) -> list[float] | None:
    cw = cfg.train.class_weights
    if cw is None or isinstance(cw, list):
        return cw
    if isinstance(cw, str):
        from ..data import class_stats

        return class_stats.weights_for_source(train_source, cw)
    raise PixelsegError(f"train.class_weights: expected none, median, sqrt or a list, got {cw!r}")


def new_run_dir(cfg: RunConfig) -> Path:
    """A fresh folder; an explicit name that exists is an error, an automatic one gets a suffix."""
    out = Path(cfg.out_dir)
    if cfg.name:
        run = out / cfg.name
        if run.exists():
            raise PixelsegError(f"{run}: run folder exists; choose another --name or resume it with --resume {run}")
        return run
    base = f"{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run, k = out / base, 1
    while run.exists():
        k += 1
        run = out / f"{base}-{k}"
    return run


def format_row(row: dict) -> str:
    return (f"{row['epoch']:>5d} {row['train_loss']:>10.4f} {row['train_pixel_accuracy']:>9.4f} "
            f"{row['val_loss']:>9.4f} {row['val_pixel_accuracy']:>8.4f} {row['val_miou']:>8.4f} "
            f"{row['lr']:>9.2e} {row['time_s']:>6.1f}s")


HEADER = (f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {'val_loss':>9} {'val_acc':>8} "
          f"{'val_miou':>8} {'lr':>9} {'time':>7}")


class Trainer:
    """Holds the pieces of one run; ``fit()`` trains to the configured number of epochs."""

    def __init__(self, cfg: RunConfig, resume: str | Path | None = None, progress: bool = True,
                 log=print, on_epoch=None) -> None:
        """``on_epoch(row)`` is called after each epoch's evaluation with the metrics row;
        it may raise to stop training (a tuner pruning a trial)."""
        self.cfg, self.progress, self.log, self.on_epoch = cfg, progress, log, on_epoch
        self.device = pick_device(cfg.train.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        configure_threads(self.device, self.dist.world_size)
        seed_everything(cfg.train.seed + self.dist.rank, cfg.train.deterministic)

        # 1. Everything that reads the user's input, before any file is written.
        self.train_source, self.val_source, self.classes = open_train_val(cfg.data)
        from ..data.preflight import preflight

        self.skipped = preflight([self.train_source, self.val_source], skip_bad=cfg.data.skip_bad,
                                 progress=progress and self.dist.is_main)
        nc = self.classes.num_classes
        self.model = create_model(cfg.model.name, nc, 3, **cfg.model.knobs)
        weights = resolve_class_weights(cfg, self.train_source)
        self.loss_fn = build_loss(cfg.train.loss, nc, weights).to(self.device)
        self.eval_loss_fn = build_loss("ce", nc).to(self.device)
        self.normalizer = Normalizer()
        self.start_epoch, self.best_miou, self.best_epoch = 1, -1.0, 0
        self.history: list[dict] = []
        resume_meta = None
        if resume is not None:
            resume_meta = read_sidecar(Path(resume) / "checkpoints" / "last.json")
            self.model, _ = load_checkpoint(resume_meta["_path"])
        self.model = self.model.to(self.device, memory_format=memory_format(self.device))
        self.optimizer = make_optimizer(self.model, cfg)
        if resume_meta is not None:
            load_optimizer_state(self.optimizer, resume_meta)
            self.start_epoch = resume_meta["epoch"] + 1
            self.best_miou, self.best_epoch = resume_meta["best_miou"], resume_meta["best_epoch"]
        self.ddp_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

        # 2. Loaders.
        t = cfg.train
        ds = train_dataset(self.train_source, cfg.data, cfg.augment, t.seed)
        self.train_loader = build_loader(
            ds, t.batch_size, shuffle=True, seed=t.seed, num_workers=cfg.data.num_workers,
            drop_last=len(ds) >= t.batch_size * self.dist.world_size, rank=self.dist.rank,
            world_size=self.dist.world_size, pin_memory=self.device.type == "cuda")
        vds = eval_dataset(self.val_source, cfg.data.resize, cache=cfg.data.cache)
        self.val_loader = build_loader(
            vds, t.batch_size, shuffle=False, num_workers=cfg.data.num_workers,
            rank=self.dist.rank, world_size=self.dist.world_size)
        steps = len(self.train_loader)
        if t.max_steps_per_epoch:
            steps = min(steps, t.max_steps_per_epoch)
        self.steps_per_epoch = steps
        self.total_steps = steps * t.epochs
        self.warmup_steps = int(t.warmup_epochs * steps)

        # 3. The run folder (rank 0 creates it; everyone learns its name).
        if resume is not None:
            self.run_dir = Path(resume)
            self.history = _read_history(self.run_dir / "metrics.jsonl", self.start_epoch)
        else:
            self.run_dir = new_run_dir(cfg) if self.dist.is_main else None
            self.run_dir = Path(broadcast_object(str(self.run_dir), self.dist))
            if self.dist.is_main:
                (self.run_dir / "checkpoints").mkdir(parents=True)
                atomic_write_text(self.run_dir / "config.yaml", cfg.to_yaml())
                if self.skipped:
                    atomic_write_text(self.run_dir / "skipped.txt",
                                      "".join(f"{p}\t{m}\n" for p, m in self.skipped))

    def _meta(self, epoch: int, metrics: dict) -> dict:
        return {
            "epoch": epoch, "best_miou": self.best_miou, "best_epoch": self.best_epoch,
            "classes": self.classes.to_dict(), "normalization": self.normalizer.to_dict(),
            "resize": self.cfg.data.resize, "metrics": metrics,
        }

    def train_one_epoch(self, epoch: int) -> dict:
        model, device, t = self.ddp_model, self.device, self.cfg.train
        model.train()
        self.train_loader.sampler.set_epoch(epoch)
        cm = ConfusionMatrix(self.classes.num_classes, device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}", leave=False, unit="batch",
                   disable=not (self.progress and self.dist.is_main))
        step0 = (epoch - 1) * self.steps_per_epoch
        n = 0
        for n, (images, masks) in enumerate(self.train_loader, 1):
            lr = t.lr * lr_factor(step0 + n - 1, self.total_steps, t.schedule, self.warmup_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images = self.normalizer(images.to(device, non_blocking=True))
            images = images.contiguous(memory_format=memory_format(device))
            masks = masks.to(device, non_blocking=True)
            with autocast(device):
                logits = model(images)
            loss = self.loss_fn(logits.float(), masks)
            if not torch.isfinite(loss):
                raise PixelsegError(
                    f"epoch {epoch}, step {n}: the loss became {loss.item()}; lower train.lr "
                    f"(now {t.lr}) or check the data. No checkpoint was written for this epoch.")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach().double()
            cm.update(logits.detach().argmax(1), masks)
            bar.update()
            if n % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / n:.4f}")
            if n >= self.steps_per_epoch:
                break
        bar.close()
        cm.all_reduce()
        mean_loss = reduce_mean(loss_sum / max(n, 1), self.dist)
        return {"loss": float(mean_loss), "pixel_accuracy": cm.compute()["pixel_accuracy"], "lr": lr}

    def fit(self) -> TrainResult:
        t0 = time.time()
        if self.dist.is_main:
            self.log(f"run folder: {self.run_dir}")
            self.log(f"{len(self.train_source)} train / {len(self.val_source)} val images, "
                     f"{self.classes.num_classes} classes, model {self.cfg.model.name}, "
                     f"device {self.device}, {self.steps_per_epoch} steps/epoch")
            self.log(HEADER)
        for epoch in range(self.start_epoch, self.cfg.train.epochs + 1):
            te = time.time()
            tr = self.train_one_epoch(epoch)
            val = evaluate(self.model, self.val_loader, self.normalizer, self.classes.num_classes,
                           self.device, self.eval_loss_fn)
            row = {
                "epoch": epoch, "train_loss": tr["loss"], "train_pixel_accuracy": tr["pixel_accuracy"],
                "val_loss": val["loss"], "val_pixel_accuracy": val["pixel_accuracy"],
                "val_miou": val["mean_iou"], "lr": tr["lr"], "time_s": time.time() - te,
            }
            self.history.append(row)
            improved = val["mean_iou"] > self.best_miou
            if improved:
                self.best_miou, self.best_epoch = val["mean_iou"], epoch
            if self.dist.is_main:
                self.log(format_row(row) + ("  *" if improved else ""))
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                meta = self._meta(epoch, {k: v for k, v in row.items() if k != "epoch"})
                save_checkpoint(self.run_dir / "checkpoints", "last", self.model, meta, self.optimizer)
                if improved:
                    save_checkpoint(self.run_dir / "checkpoints", "best", self.model, meta)
            if self.on_epoch is not None:
                self.on_epoch(row)
        return TrainResult(self.run_dir, self.best_miou, self.best_epoch, self.history, time.time() - t0)


def _read_history(path: Path, before_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = [r for r in rows if r["epoch"] < before_epoch]
    if len(keep) != len(rows):  # epochs after the last checkpoint are re-run: drop their rows
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
    return keep


def train(cfg: RunConfig, progress: bool = True, log=print, on_epoch=None) -> TrainResult:
    """Train a model as configured and return where the run went.

    >>> from pixelseg.config import load_config
    >>> cfg = load_config(overrides=["data.root=data/scenes", "train.epochs=5"])  # doctest: +SKIP
    >>> result = train(cfg)  # doctest: +SKIP
    """
    return Trainer(cfg, progress=progress, log=log, on_epoch=on_epoch).fit()


def resume(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True,
           log=print) -> TrainResult:
    """Continue a run from its last checkpoint; overrides may extend it (``train.epochs=60``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise PixelsegError(f"{run_dir}: not a run folder (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml", overrides)
    return Trainer(cfg, resume=run_dir, progress=progress, log=log).fit()


__all__ = ["Trainer", "TrainResult", "train", "resume"]
