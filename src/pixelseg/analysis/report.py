"""One self-contained ``report.html`` per run: every plot is an embedded PNG, no external URL,
so the file can be mailed or opened offline. This module says what each section shows; the
HTML building blocks (style, embedded PNGs, tables, number formats) are in ``html_blocks.py``.

Inputs are plain dicts (or the result objects of this package, which are converted), so the
caller wires whatever it has; every section but the training curves is optional.

history: list of per-epoch dicts (``metrics.jsonl``): epoch, train_loss, val_loss, val_miou,
    optionally train_miou (mIoU as fractions 0..1).
eval_result: ``RunEval`` (``evaluate_run``'s result) or its ``to_dict()``, or any
    ``Scores.to_dict()``-style dict: pixel_accuracy, mean_iou,
    per_class {precision, recall, iou, f1, pixels: lists, None for absent classes},
    confusion_matrix (C x C, rows = ground truth), optionally classes_averaged, mean_f1,
    split, loss, overfitting {train_miou, eval_miou, miou_gap}.
robustness: ``RobustnessResult`` or its ``to_dict()``.
calibration: ``CalibrationResult`` or its ``to_dict()``.
consistency: ``ConsistencyResult`` or its ``to_dict()`` (overall: {transform: share}).
boundary: ``BoundaryF1.compute()`` dict.
examples: list of dicts {image: (H, W, 3) uint8, gt, pred, name: str, miou: float}, where gt
    and pred are colour images (H, W, 3) uint8 or class maps (H, W) (coloured with
    ``class_colours``; IGNORE_INDEX left uncoloured). The best and worst by miou are shown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from ..data.sample import default_palette
from ..files import atomic_write_bytes
from ..runs import REPORT_NAME
from .evaluation import resolution_note
from .figures import new_figure
from .html_blocks import (
    CSS,
    array_png,
    as_dict,
    embed_figure,
    embed_png,
    html_table,
    percent,
    ratio_text,
)
from .overfitting import analyse_history, curves_figure
from .robustness import GROUPS, RobustnessResult, robustness_figure
from .stability import reliability_figure


def _training_section(history: list[dict]) -> str:
    if not history:
        return "<h2>Training</h2><p class='note'>No training history.</p>"
    verdict = analyse_history(history)
    parts = [
        "<h2>Training</h2>",
        embed_figure(curves_figure(history, verdict.best_epoch), "curves"),
    ]
    parts.append(f"<p class='verdict'>{html.escape(verdict.verdict)}</p>")
    if verdict.advice:
        parts.append(f"<p>{html.escape(verdict.advice[0].upper() + verdict.advice[1:])}.</p>")
    if verdict.best_epoch is not None:
        label = "val mIoU (%)" if verdict.metric == "val_miou" else "val loss"
        rows = [
            ["best epoch", str(verdict.best_epoch)],
            [f"best {label}", f"{verdict.best_value:.4g}"],
            [f"last {label}", f"{verdict.final_value:.4g}"],
        ]
        if verdict.gap_at_best is not None:
            rows.append(["train - val mIoU at best (points)", f"{verdict.gap_at_best:.1f}"])
            rows.append(["train - val mIoU at end (points)", f"{verdict.gap_at_end:.1f}"])
        if verdict.loss_gap_at_end is not None:
            rows.append(["val - train loss at end", f"{verdict.loss_gap_at_end:.4f}"])
        parts.append(html_table(None, rows))
    return "\n".join(parts)


def _per_class_figure(per_class: dict, names: Sequence[str]):
    keys = [k for k in ("precision", "recall", "iou") if k in per_class]
    n = len(names)
    fig = new_figure(max(6.0, 0.55 * n + 2), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(keys), 1)
    x = np.arange(n)
    for i, key in enumerate(keys):
        vals = [np.nan if v is None else 100 * v for v in per_class[key][:n]]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, vals, width, label=key)
    ax.set_xticks(x, names, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.legend(fontsize=8, ncol=len(keys))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _confusion_figure(conf: np.ndarray, names: Sequence[str]):
    rows = conf.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(rows > 0, conf / rows, np.nan)
    n = len(names)
    side = max(4.5, 0.45 * n + 2)
    fig = new_figure(side + 1, side)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (rows normalised)")
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if np.isfinite(norm[i, j]) and norm[i, j] >= 0.005:
                    colour = "white" if norm[i, j] > 0.6 else "black"
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=colour,
                    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def _eval_section(ev: dict, names: Sequence[str]) -> str:
    split = ev.get("split", "evaluation")
    parts = [f"<h2>Evaluation ({html.escape(str(split))})</h2>", "<div class='cards'>"]
    for label, key in (
        ("mIoU", "mean_iou"),
        ("pixel accuracy", "pixel_accuracy"),
        ("mean F1", "mean_f1"),
        ("mean accuracy", "mean_accuracy"),
    ):
        if ev.get(key) is not None:
            parts.append(f"<div class='card'>{label}<b>{percent(ev[key])} %</b></div>")
    parts.append("</div>")
    averaged = ev.get("classes_averaged")
    note = "mIoU averages the classes present in the ground truth or the prediction"
    if averaged is not None:
        note += f" ({len(averaged)} of {len(names)} here)"
    parts.append(f"<p class='note'>{note}; – marks a class with no pixels in either.</p>")
    where = resolution_note(ev)
    if where:
        parts.append(f"<p class='note'>{html.escape(where[0].upper() + where[1:])}.</p>")
    pc = ev.get("per_class") or {}
    if pc:
        cols = [k for k in ("precision", "recall", "iou", "f1") if k in pc]
        rows = []
        for i, name in enumerate(names):
            row = [name] + [percent(pc[k][i] if i < len(pc[k]) else None) for k in cols]
            if "pixels" in pc and i < len(pc["pixels"]):
                row.append(str(pc["pixels"][i]))
            rows.append(row)
        header = ["class"] + [f"{k} (%)" for k in cols] + (["pixels"] if "pixels" in pc else [])
        parts.append(html_table(header, rows))
        parts.append(
            embed_figure(_per_class_figure(pc, names), "per-class precision, recall and IoU")
        )
    if ev.get("confusion_matrix") is not None:
        conf = np.asarray(ev["confusion_matrix"], dtype=np.float64)
        parts.append(
            embed_figure(_confusion_figure(conf, names[: conf.shape[0]]), "confusion matrix")
        )
    gap = ev.get("overfitting")
    if gap and gap.get("miou_gap") is not None:
        parts.append(
            f"<p>Train mIoU {percent(gap.get('train_miou'))} % vs {html.escape(str(split))} mIoU "
            f"{percent(gap.get('eval_miou'))} %: gap {100 * gap['miou_gap']:+.1f} points.</p>"
        )
    return "\n".join(parts)


def _colourise(labels: np.ndarray, image: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Blend a class map (H, W) or a colour image (H, W, 3) half over the image."""
    labels = np.asarray(labels)
    base = image.astype(np.float64)
    if labels.ndim == 3:
        return np.rint(0.5 * base + 0.5 * labels).astype(np.uint8)
    out = base.copy()
    valid = (labels != IGNORE_INDEX) & (labels >= 0) & (labels < len(colours))
    out[valid] = 0.5 * base[valid] + 0.5 * colours[labels[valid]]
    return np.rint(out).astype(np.uint8)


def _examples_section(examples: list[dict], colours: np.ndarray, per_side: int) -> str:
    ranked = sorted(examples, key=lambda e: -float(e.get("miou", 0.0)))
    if len(ranked) <= 2 * per_side:
        groups = [("Examples, best first", ranked)]
    else:
        groups = [("Best predicted", ranked[:per_side]), ("Worst predicted", ranked[-per_side:])]
    parts = [
        "<h2>Predictions</h2>",
        "<p class='note'>Image, ground truth over the image, prediction over the image.</p>",
    ]
    for title, group in groups:
        parts.append(f"<h3>{title}</h3>")
        for ex in group:
            image = np.asarray(ex["image"], dtype=np.uint8)
            gt = _colourise(ex["gt"], image, colours)
            pred = _colourise(ex["pred"], image, colours)
            strip = np.concatenate(
                [
                    image,
                    np.full((image.shape[0], 4, 3), 255, np.uint8),
                    gt,
                    np.full((image.shape[0], 4, 3), 255, np.uint8),
                    pred,
                ],
                axis=1,
            )
            caption = f"{ex.get('name', '')} — mIoU {percent(ex.get('miou'))} %"
            parts.append(
                f"<figure>{embed_png(array_png(strip, 960, 160), caption)}"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    return "\n".join(parts)


def _robustness_section(rob: dict) -> str:
    result = RobustnessResult.from_dict(rob)
    header = ["corruption"] + [f"s{s}" for s in result.severities] + ["mean", "relative"]
    rows = []
    for name, vals in result.miou.items():
        mean = result.corruption_mean(name)
        rel = result.relative(mean)
        rows.append([name] + [percent(v) for v in vals] + [percent(mean), ratio_text(rel)])
    blank = [""] * len(result.severities)
    groups = result.group_names()
    for key, names in groups.items():
        mean = result.group_mean(names)
        rows.append([GROUPS[key]] + blank + [percent(mean), ratio_text(result.relative(mean))])
    rows.append(
        ["all corruptions"]
        + blank
        + [percent(result.mean_corrupted_miou), ratio_text(result.relative_robustness)]
    )
    rows.append(["clean"] + blank + [percent(result.clean_miou), "1.000"])
    return "\n".join(
        [
            "<h2>Robustness to corruptions</h2>",
            f"<p class='note'>mIoU (%) per corruption and severity over {result.num_samples} "
            "images; relative = corrupted / clean mIoU.</p>",
            _groups_note(groups),
            html_table(header, rows),
            embed_figure(robustness_figure(result), "robustness"),
        ]
    )


def _groups_note(groups: dict[str, list[str]]) -> str:
    if not groups:
        return ""
    parts = [f"{GROUPS[k]}: {', '.join(v) or 'none'}" for k, v in groups.items()]
    return (
        "<p class='note'>The model was trained with corruptions (augment.corruptions). "
        + html.escape("; ".join(parts))
        + ". Geometric corruptions belong to neither group.</p>"
    )


def _calibration_section(cal: dict) -> str:
    return "\n".join(
        [
            "<h2>Calibration</h2>",
            f"<p>Expected calibration error {percent(cal['ece'], 2)} %, maximum calibration error "
            f"{percent(cal['mce'], 2)} % over {cal['count']} pixels "
            f"({cal.get('n_bins', '')} bins).</p>",
            embed_figure(reliability_figure(cal), "reliability diagram"),
        ]
    )


def _consistency_section(con: dict) -> str:
    rows = [[t, percent(v, 2)] for t, v in con["overall"].items()]
    if con.get("mean") is not None:
        rows.append(["mean", percent(con["mean"], 2)])
    return "<h2>Prediction consistency</h2>" + html_table(["transform", "same class (%)"], rows)


def _boundary_section(bf: dict, names: Sequence[str]) -> str:
    rows = [
        [
            names[c] if c < len(names) else str(c),
            percent(bf["precision"][c]),
            percent(bf["recall"][c]),
            percent(bf["f1"][c]),
        ]
        for c in range(len(bf["f1"]))
    ]
    rows.append(
        [
            "mean",
            percent(bf.get("mean_precision")),
            percent(bf.get("mean_recall")),
            percent(bf.get("mean_f1")),
        ]
    )
    return (
        f"<h2>Boundary F1 (tolerance {html.escape(str(bf.get('tolerance', '')))})</h2>"
        + html_table(["class", "precision (%)", "recall (%)", "F1 (%)"], rows)
    )


def _text_section(title: str, text: str) -> str:
    return f"<h2>{title}</h2><pre>{html.escape(text)}</pre>"


def write_report(
    run_dir: str | Path,
    *,
    history: list[dict],
    class_names: Sequence[str],
    eval_result=None,
    robustness=None,
    calibration=None,
    consistency=None,
    boundary: dict | None = None,
    summary_text: str | None = None,
    config_text: str | None = None,
    examples: list[dict] | None = None,
    class_colours: Sequence[Sequence[int]] | None = None,
    examples_per_side: int = 3,
    title: str | None = None,
    filename: str = REPORT_NAME,
) -> Path:
    """Write ``run_dir / filename`` (atomically) and return its path. See the module docstring
    for the keys of each input; sections without data are left out."""
    run_dir = Path(run_dir)
    names = list(class_names)
    if class_colours is None:
        class_colours = default_palette(max(len(names), 1))
    colours = np.asarray(class_colours, dtype=np.float64)
    title = title or f"pixelseg report: {run_dir.name}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(names)} classes: {html.escape(', '.join(names))}</p>",
    ]
    body.append(_training_section(list(history or [])))
    if eval_result:
        body.append(_eval_section(as_dict(eval_result), names))
    if examples:
        body.append(_examples_section(list(examples), colours, examples_per_side))
    if robustness is not None:
        body.append(_robustness_section(as_dict(robustness)))
    if calibration is not None:
        body.append(_calibration_section(as_dict(calibration)))
    if consistency is not None:
        body.append(_consistency_section(as_dict(consistency)))
    if boundary is not None:
        body.append(_boundary_section(boundary, names))
    if summary_text:
        body.append(_text_section("Model", summary_text))
    if config_text:
        body.append(_text_section("Configuration", config_text))
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = run_dir / filename
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
