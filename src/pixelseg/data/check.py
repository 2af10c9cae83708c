"""pixelseg check-data: broken files, mismatched pairs, bad labels and class imbalance.

    report = check_dataset("data/")               # full: every file read (as before training)
    report = check_dataset("data/", full=False)   # fast: headers, existence and sizes only
    print(report.text()); report.ok; report.problems    # [(path, message)]

What is a problem and what a warning is decided once, in ``inspect.py``: the full check here
and the check before every training are the same inspection, so ``pixelseg train`` refuses
(or, with ``--skip-bad``, skips) exactly what this report calls a problem. This module adds
the report: split summaries, class statistics and notes, warnings across splits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from ..files import atomic_write_bytes
from . import class_stats as cs
from .formats import resolve_format
from .inspect import Problem, inspect_split
from .sample import ClassTable
from .source import SegmentationSource


def _error_pair(error: PixelsegError, default: Path) -> Problem:
    head, sep, tail = str(error).partition(": ")
    if sep and ("/" in head or Path(head).exists()):
        return Path(head), tail
    return default, str(error)


@dataclass
class SplitSummary:
    name: str
    images: int = 0
    sizes: Counter = field(default_factory=Counter)  # (H, W) -> images
    stats: cs.ClassStats | None = None  # full check only

    def to_dict(self) -> dict:
        d = {
            "images": self.images,
            "sizes": {f"{h}x{w}": n for (h, w), n in self.sizes.most_common()},
        }
        if self.stats is not None:
            d["class_stats"] = self.stats.to_dict()
        return d


@dataclass
class CheckReport:
    root: Path
    format: str
    full: bool
    classes: ClassTable | None = None
    splits: dict[str, SplitSummary] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "format": self.format,
            "full": self.full,
            "ok": self.ok,
            "classes": self.classes.names if self.classes else None,
            "splits": {k: s.to_dict() for k, s in self.splits.items()},
            "problems": [{"path": str(p), "message": m} for p, m in self.problems],
            "warnings": [{"path": str(p), "message": m} for p, m in self.warnings],
            "notes": list(self.notes),
        }

    def text(self) -> str:
        """The human-readable report: splits, sizes, class histogram, problems, warnings."""
        lines = [
            f"dataset {self.root} ({self.format} layout, {'full' if self.full else 'fast'} check)"
        ]
        if self.classes:
            lines.append(f"classes ({self.classes.num_classes}): {', '.join(self.classes.names)}")
        lines.append("")
        lines.append(f"{'split':<10}{'images':>7}  image sizes (HxW)")
        for s in self.splits.values():
            lines.append(f"{s.name:<10}{s.images:>7}  {_sizes_text(s.sizes)}")
        lines += _histogram_lines(self)
        lines.append("")
        if self.problems:
            files = len({p for p, _ in self.problems})
            lines.append(f"{len(self.problems)} problem(s) in {files} file(s):")
            lines += [f"  {p}: {m}" for p, m in self.problems]
        else:
            lines.append("no problems found")
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += _grouped(self.warnings)
        if self.notes:
            lines.append("notes:")
            lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def save_plot(self, path: str | Path) -> None:
        """Bar plot of each class's pixel share per split (needs a full check)."""
        stats = {k: s.stats for k, s in self.splits.items() if s.stats is not None}
        if not stats or self.classes is None:
            raise PixelsegError(f"{path}: the class plot needs a full check (without --fast)")
        import io

        from matplotlib.figure import Figure  # no pyplot: renders with Agg, no global state

        names = self.classes.names
        fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / len(stats)
        x = np.arange(len(names))
        for k, (split, st) in enumerate(stats.items()):
            ax.bar(
                x + (k - (len(stats) - 1) / 2) * width,
                [100 * v for v in st.shares()],
                width,
                label=f"{split} ({st.num_images} images)",
            )
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("share of labelled pixels (%)")
        ax.set_title(f"class pixel share: {self.root.name}")
        ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
        atomic_write_bytes(path, buf.getvalue())


def _sizes_text(sizes: Counter, top: int = 3) -> str:
    if not sizes:
        return "-"
    shown = ", ".join(f"{h}x{w} ({n})" for (h, w), n in sizes.most_common(top))
    if len(sizes) > top:
        pixels = sorted(sizes, key=lambda hw: hw[0] * hw[1])
        (h0, w0), (h1, w1) = pixels[0], pixels[-1]
        shown += f", {len(sizes) - top} other sizes; smallest {h0}x{w0}, largest {h1}x{w1}"
    return shown


def _histogram_lines(report: CheckReport) -> list[str]:
    stats = {k: s.stats for k, s in report.splits.items() if s.stats is not None}
    if not stats or report.classes is None:
        return []
    lines = ["", "class pixels: share of labelled pixels (number of images with the class)"]
    lines.append(f"{'id':>4} {'class':<16}" + "".join(f"{k:>20}" for k in stats))
    shares = {k: st.shares() for k, st in stats.items()}
    first = next(iter(stats))
    top = max(shares[first]) or 1.0
    for c, name in enumerate(report.classes.names):
        row = f"{c:>4} {name[:16]:<16}"
        for k, st in stats.items():
            row += f"{100 * shares[k][c]:>11.2f}% ({st.images[c]:>5})"
        lines.append(row + "  " + "#" * round(20 * shares[first][c] / top))
    row = f"{'':>4} {'(ignored)':<16}"
    for st in stats.values():
        total = sum(st.pixels) + st.ignore_pixels
        row += f"{100 * st.ignore_pixels / max(total, 1):>11.2f}% {'of all':<7}"
    lines.append(row.rstrip())
    return lines


def _grouped(items: list[Problem], show: int = 3) -> list[str]:
    """One line per file, except that a message shared by many files is listed once."""
    by_msg: dict[str, list[Path]] = defaultdict(list)
    for p, m in items:
        by_msg[m].append(p)
    lines = []
    for m, paths in by_msg.items():
        if len(paths) <= show:
            lines += [f"  {p}: {m}" for p in paths]
        else:
            some = ", ".join(str(p) for p in paths[:show])
            lines.append(f"  {len(paths)} files: {m} (e.g. {some}; all in --json)")
    return lines


def check_dataset(
    root: str | Path,
    format: str = "auto",
    full: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> CheckReport:
    """Check every split of the dataset at ``root``; see ``inspect.py`` for what is checked.
    ``full=False`` reads headers only. Raises PixelsegError only when the dataset cannot be
    checked at all (no folder, unknown layout)."""
    root = Path(root)
    fmt = resolve_format(root, format)
    report = CheckReport(root, fmt.name, full)
    split_names = fmt.splits(root)
    if not split_names:
        report.problems.append(
            (root, f"no split (train, val, test) found in the {fmt.name} layout")
        )
        return report
    sources: dict[str, SegmentationSource] = {}
    for split in split_names:
        try:
            sources[split] = fmt.open(root, split)
        except PixelsegError as e:
            report.problems.append(_error_pair(e, root))
    level = "full" if full else "fast"
    for split, src in sources.items():
        inferred = getattr(src, "classes_inferred", False)
        if report.classes is None and (full or not inferred):
            report.classes = src.classes
        inspection = inspect_split(src, level, workers, progress, f"check {split}")
        report.problems += inspection.problems
        summary = report.splits[split] = SplitSummary(split, len(src.items))
        if full:
            summary.stats = cs.ClassStats.empty(src.classes.names)
        for r in inspection.items:
            report.warnings += r.warnings
            if r.size:
                summary.sizes[r.size] += 1
            if summary.stats is not None and r.counts is not None:
                summary.stats.add_counts(r.counts)
    _cross_split_names(sources, report)
    if full and sources:
        _class_notes(report, next(iter(sources.values())))
    report.problems = list(dict.fromkeys(report.problems))
    report.warnings = list(dict.fromkeys(report.warnings))
    return report


def _cross_split_names(sources: dict[str, SegmentationSource], report: CheckReport) -> None:
    """Same name and same byte size in two splits: most likely one image used twice (a name
    alone is not enough, many datasets number each split's files from 1)."""
    seen: dict[tuple[str, int], str] = {}
    for split, src in sources.items():
        for item in src.items:
            try:
                key = (item.name, item.image.stat().st_size)
            except OSError:
                continue
            other = seen.setdefault(key, split)
            if other != split:
                msg = f"also in split {other} with the same name and size: a leak between splits?"
                report.warnings.append((item.image, msg))


def _class_notes(report: CheckReport, source: SegmentationSource) -> None:
    if getattr(source, "classes_inferred", False):
        n = source.classes.num_classes
        report.notes.append(
            f"no classes file: {n} classes inferred from the largest label value "
            "in train; add classes.txt (one name a line) to name them"
        )
        values = {v for s in report.splits.values() if s.stats for v in _values(s.stats)}
        if values == {0, IGNORE_INDEX}:
            report.notes.append(
                f"masks hold only 0 and {IGNORE_INDEX}: {IGNORE_INDEX} is the ignore "
                "index; if it marks the foreground, save the masks with 1 instead"
            )
    split = "train" if "train" in report.splits else next(iter(report.splits), None)
    stats = report.splits[split].stats if split else None
    if stats is None or stats.num_images == 0:
        return
    absent = [name for name, p in zip(stats.names, stats.pixels) if p == 0]
    if absent:
        report.notes.append(f"classes with no pixel in {split}: {', '.join(absent)}")
    shares = stats.shares()
    rare = [f"{n} {100 * s:.2f}%" for n, s in zip(stats.names, shares) if 0 < s < 0.01]
    if rare:
        report.notes.append(
            f"rare classes in {split} (<1% of pixels): {', '.join(rare)}; "
            "consider train.class_weights=median"
        )


def _values(stats: cs.ClassStats) -> set[int]:
    present = {c for c, p in enumerate(stats.pixels) if p}
    return present | ({IGNORE_INDEX} if stats.ignore_pixels else set())
