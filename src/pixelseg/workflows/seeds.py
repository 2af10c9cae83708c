"""Seed variance: one configuration trained with n seeds, a run folder each, and the mean and
spread of the final metrics (``pixelseg train --seeds N``). The training is the engine's and
the statistics are ``analysis.stability.summarize_seeds``; this workflow runs one after the
other and saves both.

    >>> out = pixelseg.train_seeds(cfg, 3)               # doctest: +SKIP
    >>> out.summary["best_val_miou"]["std"]              # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..analysis.stability import summarize_seeds
from ..config import RunConfig
from ..engine.trainer import train
from ..files import atomic_write_text


@dataclass
class SeedsResult:
    runs: list[dict]  # per seed: seed, best/final val mIoU, final losses, run folder
    summary: dict[str, dict[str, float]]  # metric -> mean, std, min, max
    path: Path  # <out_dir>/<name>-seeds.json

    def table(self) -> str:
        lines = [f"{'metric':<18} {'mean':>8} {'std':>8} {'min':>8} {'max':>8}"]
        for key, s in self.summary.items():
            lines.append(
                f"{key:<18} {s['mean']:>8.4f} {s['std']:>8.4f} {s['min']:>8.4f} {s['max']:>8.4f}"
            )
        return "\n".join(lines)


def train_seeds(
    cfg: RunConfig, n: int, progress: bool = True, log: Callable[..., None] = print
) -> SeedsResult:
    """Train ``cfg`` with seeds ``cfg.train.seed``, +1, ... (runs ``<name>-seed<k>``) and save
    the per-seed finals and their summary as ``<out_dir>/<name>-seeds.json``."""
    base_name = cfg.name or f"{cfg.model.name}-seeds"
    finals = []
    for k in range(n):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.train.seed = cfg.train.seed + k
        run_cfg.name = f"{base_name}-seed{run_cfg.train.seed}"
        log(f"\n== seed {run_cfg.train.seed} ({k + 1}/{n}) ==")
        result = train(run_cfg, progress=progress, log=log)
        last = result.history[-1]
        finals.append(
            {
                "seed": run_cfg.train.seed,
                "best_val_miou": result.best_miou,
                "final_val_miou": last["val_miou"],
                "final_val_loss": last["val_loss"],
                "final_train_loss": last["train_loss"],
                "run": str(result.run_dir),
            }
        )
    numeric = [{k: v for k, v in f.items() if k not in ("seed", "run")} for f in finals]
    summary = summarize_seeds(numeric)
    path = Path(cfg.out_dir) / f"{base_name}-seeds.json"
    atomic_write_text(path, json.dumps({"runs": finals, "summary": summary}, indent=1))
    return SeedsResult(finals, summary, path)


__all__ = ["SeedsResult", "train_seeds"]
