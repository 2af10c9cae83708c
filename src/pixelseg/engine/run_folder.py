"""The run folder's name and its metrics log: creating, reading back on resume, printing rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig
from ..data.imageio import atomic_write_text
from ..errors import PixelsegError
from .checkpoint import save_checkpoint
from .distributed import DistInfo, broadcast_or_raise


def new_run_dir(cfg: RunConfig) -> Path:
    """A fresh folder; an explicit name that exists is an error, an automatic one gets a suffix."""
    out = Path(cfg.out_dir)
    if cfg.name:
        run = out / cfg.name
        if run.exists():
            raise PixelsegError(
                f"{run}: run folder exists; choose another --name or resume it with --resume {run}"
            )
        return run
    base = f"{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run, k = out / base, 1
    while run.exists():
        k += 1
        run = out / f"{base}-{k}"
    return run


def create_run_folder(cfg: RunConfig, info: DistInfo, skipped: list) -> Path:
    """Rank 0 creates the folder and writes the resolved config; every rank learns its name
    (or rank 0's error, so that no rank waits forever for a folder that was never made)."""
    run_dir, error = None, None
    if info.is_main:
        try:
            run_dir = str(new_run_dir(cfg))
        except PixelsegError as e:
            error = str(e)
    run = Path(broadcast_or_raise(run_dir, error, info))
    if info.is_main:
        (run / "checkpoints").mkdir(parents=True)
        atomic_write_text(run / "config.yaml", cfg.to_yaml())
        if skipped:
            atomic_write_text(run / "skipped.txt", "".join(f"{p}\t{m}\n" for p, m in skipped))
    return run


def read_history(path: Path, before_epoch: int, rewrite: bool = True) -> list[dict]:
    """Rows of ``metrics.jsonl`` before ``before_epoch``. Rows of epochs after the last
    checkpoint are re-run on resume, so (with ``rewrite``, rank 0 only) they are dropped."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = [r for r in rows if r["epoch"] < before_epoch]
    if rewrite and len(keep) != len(rows):
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
    return keep


def append_row(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def write_epoch(
    run_dir: Path,
    row: dict,
    meta: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema_model: nn.Module | None,
    improved: bool,
) -> None:
    """Rank 0's writes after an epoch: the metrics row, ``last`` (raw weights + optimizer, for
    resuming), ``ema`` (the weight average, when enabled) and ``best`` (the evaluated weights,
    i.e. the average when enabled) if the val mIoU improved."""
    append_row(run_dir / "metrics.jsonl", row)
    folder = run_dir / "checkpoints"
    if ema_model is not None:  # before "last": a "last" always has its "ema" beside it
        save_checkpoint(folder, "ema", ema_model, meta)
    save_checkpoint(folder, "last", model, {**meta, "weights": "raw"}, optimizer)
    if improved:
        save_checkpoint(folder, "best", ema_model if ema_model is not None else model, meta)


def format_row(row: dict) -> str:
    return (
        f"{row['epoch']:>5d} {row['train_loss']:>10.4f} {row['train_pixel_accuracy']:>9.4f} "
        f"{row['val_loss']:>9.4f} {row['val_pixel_accuracy']:>8.4f} {row['val_miou']:>8.4f} "
        f"{row['lr']:>9.2e} {row['time_s']:>6.1f}s"
    )


HEADER = (
    f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {'val_loss':>9} {'val_acc':>8} "
    f"{'val_miou':>8} {'lr':>9} {'time':>7}"
)
