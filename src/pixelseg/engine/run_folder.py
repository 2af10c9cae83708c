"""Writing a run folder: its name, creation, metrics log (read back on resume) and checkpoint
commits. Where each file lives is ``pixelseg.runs.RunFolder``'s alone."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..runs import RunFolder
from .checkpoint import prune_checkpoint_files, write_checkpoint_files, write_sidecar
from .distributed import DistInfo, broadcast_or_raise
from .faults import crash_point, write_file
from .sidecar import RESUME_KEYS, Sidecar, read_sidecar


def _abandoned(run: Path) -> bool:
    """A folder a run was killed in before it wrote its config.yaml: nothing but empty
    folders and temporary files, so nothing to resume and nothing to lose."""
    return not RunFolder(run).config_file.exists() and all(
        p.is_dir() or p.name.endswith(".tmp") for p in run.rglob("*")
    )


def new_run_dir(cfg: RunConfig) -> Path:
    """A fresh folder; an explicit name that exists is an error, an automatic one gets a suffix.
    An explicit name whose folder holds nothing (a run killed while starting) is reused."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise PixelsegError(f"{out}: --out-dir (out_dir) is a file; runs need a folder there")
    if cfg.name:
        run = out / cfg.name
        if run.is_dir() and _abandoned(run):
            shutil.rmtree(run)
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
            RunFolder(run_dir).checkpoints.mkdir(parents=True)
        except PixelsegError as e:
            error = str(e)
        except OSError as e:  # e.g. a file where a parent folder should be
            error = f"{run_dir}: cannot create the run folder ({e.strerror or e})"
    run = RunFolder(broadcast_or_raise(run_dir, error, info))
    if info.is_main:
        write_file(run.config_file, cfg.to_yaml().encode("utf-8"))
        if skipped:
            atomic_write_text(run.skipped, "".join(f"{p}\t{m}\n" for p, m in skipped))
    return run.path


def resume_config(run_dir: Path, overrides: list[str] | None = None) -> RunConfig:
    """The configuration of a run to resume (its config.yaml, with ``overrides``)."""
    run = RunFolder(run_dir)
    if not run.has_config():
        if run.checkpoints.is_dir():
            raise PixelsegError(
                f"{run_dir}: stopped before it wrote its config.yaml, so there is nothing to "
                f"resume; train again with --name {run_dir.name} (the empty folder is reused)"
            )
        raise PixelsegError(f"{run_dir}: not a run folder (no config.yaml)")
    return run.config(overrides)


def read_resume_point(run_dir: Path, log=print) -> Sidecar | None:
    """The sidecar of a run's last complete checkpoint, checked for what resuming needs; None
    when the run stopped before its first checkpoint (it then starts over, same config).

    A run that shows it trained past that point (``trained_evidence``) but has no ``last``
    checkpoint lost its checkpoints: resuming it is refused, naming what is missing, rather
    than silently training it again from the start."""
    path = RunFolder(run_dir).last
    if not path.is_file():
        evidence = trained_evidence(run_dir)
        if evidence:
            raise PixelsegError(
                f"{path}: missing, but the run trained ({'; '.join(evidence)}): its checkpoints "
                "were removed or moved; put them back to resume, or train a new run"
            )
        log(
            f"{run_dir}: stopped before its first checkpoint was complete; "
            "training it from the start with its config.yaml"
        )
        return None
    return read_sidecar(path, RESUME_KEYS)


def trained_evidence(run_dir: Path) -> list[str]:
    """What shows that a run completed a checkpoint: its report or evaluation, or a metrics row
    of an epoch after the first (epoch 1's row is appended before its checkpoint is written,
    so a run killed in its first commit has that row and nothing else to resume)."""
    run = RunFolder(run_dir)
    found = [str(p) for p in (run.report, run.eval_dir) if p.exists()]
    epochs = [r.get("epoch") for r in read_history(run.metrics, 1 << 30, rewrite=False)]
    epochs = [e for e in epochs if isinstance(e, int)]
    if epochs and max(epochs) > 1:
        found.append(f"{run.metrics} has rows up to epoch {max(epochs)}")
    return found


def restore_commit(run_dir: Path, last: Sidecar, log=print) -> None:
    """Rank 0, on resume: make ``best.json`` and ``ema.json`` those of the last complete
    checkpoint again (a crash after they were replaced but before ``last.json`` was leaves
    them an epoch ahead: that epoch is re-run) and remove files no checkpoint names."""
    run = RunFolder(run_dir)
    folder = run.checkpoints
    for tag, committed in (last.commit or {}).items():
        if committed is None:
            continue
        path = run.sidecar(tag)
        try:
            current = json.loads(path.read_text())
        except (OSError, ValueError):
            current = None
        if current != committed:
            write_sidecar(folder, tag, committed)
            log(f"{path}: restored to the last complete checkpoint (epoch {last.epoch})")
    prune_checkpoint_files(folder)


def read_history(path: Path, before_epoch: int, rewrite: bool = True) -> list[dict]:
    """Rows of ``metrics.jsonl`` before ``before_epoch``. Rows of epochs after the last
    checkpoint are re-run on resume, so (with ``rewrite``, rank 0 only) they are dropped, and
    so is a last line cut short by a crash while it was appended."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines):
                raise PixelsegError(
                    f"{path}: line {n} is not JSON; the metrics log is damaged"
                ) from None
    keep = [r for r in rows if r["epoch"] < before_epoch]
    text = "".join(json.dumps(r) + "\n" for r in keep)
    if rewrite and text != "".join(line + "\n" for line in lines):
        atomic_write_text(path, text)
    return keep


def append_row(path: Path, row: dict) -> None:
    line = json.dumps(row) + "\n"

    def torn() -> None:  # a kill in the middle of the append
        with open(path, "a") as f:
            f.write(line[: len(line) // 2])

    crash_point(torn)
    with open(path, "a") as f:
        f.write(line)
    crash_point()


def _committed_best(run: RunFolder) -> dict | None:
    """The ``best`` sidecar of the last commit (that of a run from before commits recorded it:
    ``best.json`` as it is)."""
    last = read_sidecar(run.last) if run.last.is_file() else None
    if last is not None and last.has("commit"):
        return (last.commit or {}).get("best") or None
    return read_sidecar(run.best).to_dict() if run.best.is_file() else None


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
    i.e. the average when enabled) if the val mIoU improved.

    One commit: every data file is written under a new name first; then ``best.json`` and
    ``ema.json``; then ``last.json``, which also records the ``best`` and ``ema`` sidecars of
    this commit. Resuming reads ``last.json`` alone and puts the other two back if a crash
    left them ahead of it (``restore_commit``), so a run killed at any instant resumes
    exactly; ``pixelseg.load`` of ``best.json`` sees a complete checkpoint at every instant.
    """
    run = RunFolder(run_dir)
    append_row(run.metrics, row)
    folder = run.checkpoints
    ema = write_checkpoint_files(folder, "ema", ema_model, meta) if ema_model is not None else None
    last = write_checkpoint_files(folder, "last", model, {**meta, "weights": "raw"}, optimizer)
    if improved:
        evaluated = ema_model if ema_model is not None else model
        best = write_checkpoint_files(folder, "best", evaluated, meta)
    else:  # the best of the previous commit stays the best
        best = _committed_best(run)
    last["commit"] = {"best": best, "ema": ema}
    if improved:
        write_sidecar(folder, "best", best)
    if ema is not None:
        write_sidecar(folder, "ema", ema)
    write_sidecar(folder, "last", last)  # the commit point
    prune_checkpoint_files(folder)
