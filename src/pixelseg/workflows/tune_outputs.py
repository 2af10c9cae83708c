"""What ``pixelseg tune`` leaves in ``<out>/<study>/``, rewritten (atomically) whenever a worker
stops (``tune.py``), and the summary it returns (``TuneSummary``):

best.yaml         the best trial's full configuration: ``pixelseg train --config best.yaml``
                  (train.epochs, the run name and out_dir are the base configuration's, not
                  the short per-trial budget)
trials.csv        number, state, value, duration_s, epochs, worker, note, one column per
                  parameter (empty where a trial did not have it: conditional parameters)
history.png       val mIoU per trial (pruned trials at their last reported value) and the
                  best so far
importances.png   parameter importances (Optuna's default evaluator: PED-ANOVA in Optuna
                  5; fANOVA, which needs scikit-learn, in older ones), when >= 2 trials
                  completed; skipped with a note when it cannot be computed
summary.json      counts per state, the best trial, the files
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, atomic_write_text
from ..tuning import require_optuna
from ..tuning.options import trial_config


@dataclass
class TuneSummary:
    study_dir: Path
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None
    files: list[Path]
    notes: list[str]


def _note(t) -> str:
    a = t.user_attrs
    if t.state.name == "PRUNED" and t.intermediate_values:
        return f"pruned after epoch {max(t.intermediate_values)}"
    for key in ("error", "stopped", "skipped"):
        if key in a:
            return str(a[key])
    if a.get("interrupted"):
        return "interrupted"
    if t.state.name == "FAIL":
        return "worker stopped (killed or lost its heartbeat)"
    return ""


def trials_csv(trials: list) -> str:
    params = sorted({k for t in trials for k in t.params})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "value", "duration_s", "epochs", "worker", "note", *params])
    for t in sorted(trials, key=lambda t: t.number):
        w.writerow(
            [
                t.number,
                t.state.name,
                "" if t.value is None else f"{t.value:.6f}",
                "" if t.duration is None else f"{t.duration.total_seconds():.1f}",
                max(t.intermediate_values, default=""),
                t.user_attrs.get("worker", ""),
                _note(t),
                *[t.params.get(p, "") for p in params],
            ]
        )
    return buf.getvalue()


def best_yaml(study, opts) -> tuple[str, Any] | None:
    """The best completed trial's configuration as YAML, or None when none completed."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        return None
    best = max(done, key=lambda t: t.value)
    cfg = trial_config(opts, list(best.user_attrs.get("overrides", [])))
    header = (
        f"# pixelseg tune: best of study {opts.study!r}: trial {best.number}, val mIoU "
        f"{best.value:.4f} after {max(best.intermediate_values, default='?')} epoch(s)\n"
        f"# train it: pixelseg train --config best.yaml (train.epochs={cfg.train.epochs}, "
        f"the base configuration's; each trial had {opts.epochs_per_trial})\n"
    )
    return header + cfg.to_yaml(), best


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def history_png(trials: list, title: str) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no global state

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    done = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    pruned = [
        (t.number, t.intermediate_values[max(t.intermediate_values)])
        for t in trials
        if t.state.name == "PRUNED" and t.intermediate_values
    ]
    if done:
        ax.scatter(*zip(*done), label="completed", color="tab:blue", zorder=3)
    if pruned:
        ax.scatter(
            *zip(*pruned), label="pruned (last value)", color="tab:gray", marker="x", zorder=3
        )
    if done:
        xs, best, running = [], [], float("-inf")
        for n, v in sorted(done):
            running = max(running, v)
            xs.append(n)
            best.append(running)
        ax.step(xs, best, where="post", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("val mIoU")
    ax.set_title(f"optimisation history: {title}")
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend()
    return _png(fig)


def importances_png(importances: dict[str, float], title: str) -> bytes:
    from matplotlib.figure import Figure

    names = list(importances)[::-1]  # most important at the top
    fig = Figure(figsize=(7, 0.35 * len(names) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance for val mIoU (Optuna's default evaluator, sums to 1)")
    ax.set_title(f"parameter importances: {title}")
    return _png(fig)


def write_outputs(study, opts, log: Callable[..., None] = print):
    """Write every file listed in the module docstring; return a TuneSummary."""
    optuna = require_optuna()
    out = opts.study_dir
    trials = study.get_trials(deepcopy=False)
    files, notes = [], []
    atomic_write_text(out / "trials.csv", trials_csv(trials))
    files.append(out / "trials.csv")
    best = best_yaml(study, opts)
    if best is not None:
        atomic_write_text(out / "best.yaml", best[0])
        files.append(out / "best.yaml")
    else:
        notes.append("no trial completed: no best.yaml")
    atomic_write_bytes(out / "history.png", history_png(trials, opts.study))
    files.append(out / "history.png")
    completed = [t for t in trials if t.state.name == "COMPLETE"]
    importances: dict[str, float] = {}
    if len(completed) >= 2:
        try:
            with warnings.catch_warnings():  # "few trials per regime": expected in small studies
                warnings.simplefilter("ignore")
                importances = dict(optuna.importance.get_param_importances(study))
        except Exception as e:  # e.g. every trial scored the same: nothing to attribute
            notes.append(f"no importance plot: {type(e).__name__}: {e}")
        if importances:
            atomic_write_bytes(out / "importances.png", importances_png(importances, opts.study))
            files.append(out / "importances.png")
    else:
        notes.append(f"no importance plot: {len(completed)} completed trial(s), needs 2")
    counts = Counter(t.state.name for t in trials)
    best_trial = best[1] if best else None
    summary = {
        "study": opts.study,
        "counts": dict(counts),
        "best": None
        if best_trial is None
        else {
            "number": best_trial.number,
            "value": best_trial.value,
            "params": best_trial.params,
            "run_dir": best_trial.user_attrs.get("run_dir"),
        },
        "importances": importances,
        "files": [p.name for p in files],
        "notes": notes,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    files.append(out / "summary.json")
    log(f"{len(trials)} trial(s): " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
    if best_trial is not None:
        log(
            f"best: trial {best_trial.number}, val mIoU {best_trial.value:.4f}; {out / 'best.yaml'}"
        )
    for note in notes:
        log(note)
    log(f"outputs in {out}: {', '.join(p.name for p in files)}")
    return TuneSummary(
        Path(out),
        dict(counts),
        None if best_trial is None else best_trial.number,
        None if best_trial is None else best_trial.value,
        files,
        notes,
    )
