"""Dataset checks: broken files, mismatched pairs, bad labels and class imbalance.

    report = check_dataset("data/")               # full: decodes every file (pixelseg check-data)
    report = check_dataset("data/", full=False)   # fast: headers, existence and sizes only
    print(report.text()); report.ok; report.problems    # [(path, message)]
    bad = find_bad_items(source)                  # [(Item, message)], for --skip-bad

Problems (they make ``ok`` false) would fail or corrupt training: unreadable, truncated or
empty files; an image without a mask or a mask without an image; size mismatches; label
values that are no class id; colour masks that cannot be mapped; images over the
decompression-bomb limit; two files with the same name. Warnings are inputs that are converted
on the fly but may not be what was meant: 16-bit, alpha, grayscale or CMYK images, EXIF
rotation, JPEG masks, masks with no labelled pixel, the same name in two splits.

The fast mode reads headers only, except that a PNG or JPEG whose end marker is missing is
decoded to confirm it is truncated. Readers can help through two optional methods on their
source: ``layout_problems() -> [(path, message)]`` (orphan files, bad index entries) and
``mask_size(item) -> (H, W)`` for label maps that are not image files (COCO).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from . import class_stats as cs
from .classes_file import find_classes_file, read_classes_file
from .formats import resolve_format
from .imageio import MAX_PIXELS, atomic_write_bytes, list_images
from .parallel import map_items
from .sample import ClassTable
from .source import Item, SegmentationSource

Problem = tuple[Path, str]

ORIENTATION_TAG = 0x0112
ORIENTATIONS = {
    2: "mirrored",
    3: "rotated 180",
    4: "flipped",
    5: "mirrored and rotated 90",
    6: "rotated 90",
    7: "mirrored and rotated 270",
    8: "rotated 270",
}
SWAPS_SIDES = {5, 6, 7, 8}
MAX_LABEL_COLOURS = 256  # an RGB mask with at most this many colours looks colour-coded
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass
class _Header:
    width: int
    height: int
    mode: str
    format: str | None
    orientation: int
    alpha: bool

    @property
    def upright(self) -> tuple[int, int]:
        """(H, W) once the EXIF orientation is applied, as ``read_image`` returns it."""
        if self.orientation in SWAPS_SIDES:
            return self.width, self.height
        return self.height, self.width


@dataclass
class _ItemResult:
    item: Item
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    size: tuple[int, int] | None = None  # image (H, W) as read
    counts: dict[int, int] | None = None  # full mode: mask value -> pixels


def _strip(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _error_pair(error: PixelsegError, default: Path) -> Problem:
    head, sep, tail = str(error).partition(": ")
    if sep and ("/" in head or Path(head).exists()):
        return Path(head), tail
    return default, str(error)


def _read_header(path: Path, res: _ItemResult, role: str) -> _Header | None:
    """Open without decoding; record a problem and return None when the file is unusable."""
    if not path.is_file():
        res.problems.append((path, f"{role} file not found"))
        return None
    if path.stat().st_size == 0:
        res.problems.append((path, "file is empty (0 bytes)"))
        return None
    try:
        # imageio turns DecompressionBombWarning into an error process-wide (catch_warnings
        # is not thread-safe); the explicit pixel count below holds even without it.
        with Image.open(path) as img:
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            orientation = _orientation(img)
            header = _Header(*img.size, img.mode, img.format, orientation, alpha)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        res.problems.append((path, f"over the decompression-bomb limit ({e})"))
        return None
    except Exception as e:  # any failure to parse a header is a damaged file, not a bug
        if "truncated" in str(e):
            res.problems.append((path, f"truncated or damaged: {e}"))
        else:
            res.problems.append((path, f"unreadable: not an image or a damaged header ({e})"))
        return None
    pixels = header.width * header.height
    if pixels > MAX_PIXELS:
        res.problems.append(
            (
                path,
                f"{header.width}x{header.height} = {pixels:,} pixels, over the "
                f"decompression-bomb limit of {MAX_PIXELS:,}",
            )
        )
        return None
    return header


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation, read from the header only: Pillow's ``getexif`` on a PNG without
    an eXIf chunk before the pixel data would decode the whole file to look after it."""
    if "exif" not in img.info and img.format != "TIFF":
        return 1
    return int(img.getexif().get(ORIENTATION_TAG, 1) or 1)


def _image_warnings(h: _Header) -> list[str]:
    out = []
    if h.mode in SIXTEEN_BIT:
        out.append(
            "16-bit image: scaled to 8 bits by its own maximum when read, so brightness "
            "is not comparable between images; convert to 8 bits for a fixed scale"
        )
    elif h.mode == "F":
        out.append("32-bit float image: clipped to 0..255 when read")
    elif h.mode in ("L", "LA", "1"):
        out.append("grayscale image: copied to 3 channels when read")
    elif h.mode == "CMYK":
        out.append("CMYK image: converted to RGB when read, colours may shift")
    if h.alpha:
        out.append("image has an alpha channel: it is dropped when read")
    if h.orientation in ORIENTATIONS:
        out.append(
            f"EXIF orientation {h.orientation} ({ORIENTATIONS[h.orientation]}): the image "
            "is turned upright when read, so its mask must match the upright image"
        )
    return out


def _mask_warnings(path: Path, h: _Header) -> list[str]:
    out = []
    if path.suffix.lower() in (".jpg", ".jpeg"):
        out.append(
            "mask saved as JPEG: lossy compression changes label values along edges; use PNG"
        )
    if h.orientation in ORIENTATIONS:
        out.append(
            f"mask has EXIF orientation {h.orientation}: masks are read as stored, not rotated"
        )
    return out


def _missing_end_marker(path: Path, fmt: str | None) -> bool:
    """Cheap truncation hint: the last KiB of a PNG holds IEND, of a JPEG the EOI marker
    (inside JPEG entropy data 0xFF is always followed by 0x00 or a restart marker)."""
    if fmt not in ("PNG", "JPEG"):
        return False
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 1024))
        tail = f.read()
    return (b"IEND" not in tail) if fmt == "PNG" else (b"\xff\xd9" not in tail)


def _decode_error(path: Path) -> str | None:
    try:
        with Image.open(path) as img:
            img.load()
    except Exception as e:
        return str(e)
    return None


def _colour_summary(path: Path) -> str:
    try:
        with Image.open(path) as img:
            colours = img.convert("RGB").getcolors(MAX_LABEL_COLOURS)
    except Exception:
        return "RGB mask"
    if colours is None:
        return f"RGB mask with over {MAX_LABEL_COLOURS} colours (a photo? a JPEG-compressed mask?)"
    return f"RGB mask with {len(colours)} distinct colours (looks like a colour-coded label map)"


def _bad_values(counts: dict[int, int], num_classes: int) -> list[int]:
    return sorted(v for v in counts if v < 0 or (v >= num_classes and v != IGNORE_INDEX))


def _label_problem(counts: dict[int, int], bad: list[int], num_classes: int) -> str:
    pixels = sum(counts[v] for v in bad)
    shown = bad[:10] + (["..."] if len(bad) > 10 else [])
    return (
        f"unexpected label values {shown} ({pixels:,} pixels): class ids are "
        f"0..{num_classes - 1} and {IGNORE_INDEX} is ignore"
    )


def _check_item(
    source: SegmentationSource, item: Item, full: bool, num_classes: int | None
) -> _ItemResult:
    res = _ItemResult(item)
    image_hdr = _read_header(item.image, res, "image")
    if image_hdr:
        res.size = image_hdr.upright
        res.warnings += [(item.image, w) for w in _image_warnings(image_hdr)]
    mask_size_of = getattr(source, "mask_size", None)  # label maps that are not image files
    mask_hdr, mask_hw = None, None
    if item.mask is not None:
        if mask_size_of is not None:
            mask_hw = mask_size_of(item)
        elif not item.mask.is_file():
            res.problems.append((item.image, f"image has no mask (expected {item.mask})"))
        else:
            mask_hdr = _read_header(item.mask, res, "mask")
            if mask_hdr:
                mask_hw = (mask_hdr.height, mask_hdr.width)
                res.warnings += [(item.mask, w) for w in _mask_warnings(item.mask, mask_hdr)]
    if image_hdr and mask_hw and image_hdr.upright != mask_hw:
        (h, w), (mh, mw) = image_hdr.upright, mask_hw
        msg = f"mask is {mh}x{mw} but image {item.image.name} is {h}x{w}"
        if image_hdr.orientation in SWAPS_SIDES and (image_hdr.height, image_hdr.width) == mask_hw:
            msg += (
                " once turned upright by its EXIF orientation; the mask matches the stored "
                "pixels: rotate the mask or remove the image's EXIF orientation tag"
            )
        res.problems.append((item.image if mask_size_of else item.mask, msg))

    if not full:
        for path, hdr in ((item.image, image_hdr), (item.mask, mask_hdr)):
            if hdr and _missing_end_marker(path, hdr.format):
                err = _decode_error(path)
                if err:
                    res.problems.append((path, f"truncated or damaged: {err}"))
        return res
    if res.problems:
        return res  # decoding a file already known to be broken adds nothing

    try:
        image = source.decode_image(item)
    except PixelsegError as e:
        res.problems.append((item.image, _strip(str(e), item.image)))
        image = None
    if item.mask is None:
        return res
    mask_path = item.image if mask_size_of else item.mask
    try:
        mask = source.decode_mask(item)
    except PixelsegError as e:
        msg = _strip(str(e), mask_path)
        if mask_hdr and mask_hdr.mode in ("RGB", "RGBA"):
            msg = f"{_colour_summary(item.mask)}: {msg}"
        res.problems.append((mask_path, msg))
        return res
    if image is not None and mask.shape != image.shape[:2]:
        res.problems.append(
            (
                mask_path,
                f"mask is {mask.shape[0]}x{mask.shape[1]} but image "
                f"{item.image.name} is {image.shape[0]}x{image.shape[1]}",
            )
        )
    res.counts = cs.value_counts(mask)
    if num_classes is not None:
        bad = _bad_values(res.counts, num_classes)
        if bad:
            res.problems.append((mask_path, _label_problem(res.counts, bad, num_classes)))
    if set(res.counts) == {IGNORE_INDEX}:
        res.warnings.append(
            (mask_path, f"mask has no labelled pixel (all {IGNORE_INDEX} = ignore)")
        )
    return res


def find_bad_items(
    source: SegmentationSource,
    full: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> list[tuple[Item, str]]:
    """Items of ``source`` that would fail or corrupt training, with the reasons.

    Fast by default (headers, existence, sizes, truncation hint), so it can run before every
    training: ``--skip-bad`` drops these items and writes the list. ``full=True`` also decodes
    everything and checks label values.
    """
    n = source.classes.num_classes
    results = map_items(
        lambda it: _check_item(source, it, full, n),
        source.items,
        workers,
        progress,
        f"check {source.split}",
    )
    return [(r.item, "; ".join(f"{p}: {m}" for p, m in r.problems)) for r in results if r.problems]


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
    """Check every split of the dataset at ``root``; see the module docstring for what is
    checked. ``full=False`` reads headers only (used before training). Raises PixelsegError
    only when the dataset cannot be checked at all (no folder, unknown layout)."""
    root = Path(root)
    fmt = resolve_format(root, format)
    report = CheckReport(root, fmt.name, full)
    split_names = fmt.splits(root)
    if not split_names:
        report.problems.append(
            (root, f"no split (train, val, test) found in the {fmt.name} layout")
        )
        return report
    classes_known = True
    if fmt.name == "mask-folder":
        sources, classes_known = _open_mask_folder(root, split_names, report)
    else:
        sources = {}
        for split in split_names:
            try:
                sources[split] = fmt.open(root, split)
            except PixelsegError as e:
                report.problems.append(_error_pair(e, root))
    _check_sources_into(report, sources, full, workers, progress, classes_known)
    return report


def check_sources(
    sources: dict[str, SegmentationSource],
    full: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> CheckReport:
    """Check splits that are already open (e.g. the trainer's), without reopening them."""
    first = next(iter(sources.values()))
    report = CheckReport(first.root, first.format_name, full)
    _check_sources_into(report, sources, full, workers, progress, classes_known=True)
    return report


def _check_sources_into(report, sources, full, workers, progress, classes_known) -> None:
    counts: dict[str, list[tuple[Item, dict[int, int]]]] = {}
    split_problems: Counter = Counter()
    for split, src in sources.items():
        if report.classes is None and classes_known:
            report.classes = src.classes
        layout = getattr(src, "layout_problems", None)
        if layout is not None:
            report.problems += layout()
        n = src.classes.num_classes if classes_known else None
        results = map_items(
            lambda it, src=src, n=n: _check_item(src, it, full, n),
            src.items,
            workers,
            progress,
            f"check {split}",
        )
        summary = report.splits[split] = SplitSummary(split, len(src.items))
        for r in results:
            report.problems += r.problems
            report.warnings += r.warnings
            split_problems[split] += len(r.problems)
            if r.size:
                summary.sizes[r.size] += 1
        counts[split] = [(r.item, r.counts) for r in results if r.counts is not None]
        _duplicate_names(src, report)
    _cross_split_names(sources, report)
    if full:
        if not classes_known:
            report.classes = _infer_classes(counts, report)
        for split, pairs in counts.items():
            stats = report.splits[split].stats = cs.ClassStats.empty(report.classes.names)
            for _, c in pairs:
                stats.add_counts(c)
            if classes_known and not split_problems[split]:
                cs.save_cached(sources[split], stats)  # training reuses these counts
        _class_notes(report)
    report.problems = list(dict.fromkeys(report.problems))
    report.warnings = list(dict.fromkeys(report.warnings))


def _duplicate_names(src: SegmentationSource, report: CheckReport) -> None:
    first: dict[str, Item] = {}
    for item in src.items:
        if item.name in first:
            report.problems.append(
                (
                    item.image,
                    f"duplicate name {item.name!r} in {src.split}: "
                    f"{first[item.name].image.name} has the same name, so the "
                    "pairing with masks is ambiguous",
                )
            )
        else:
            first[item.name] = item


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


def _infer_classes(counts: dict[str, list], report: CheckReport) -> ClassTable:
    """No classes file: as the mask-folder reader does, the class count is the largest id in
    train plus one; values beyond it in other splits are reported."""
    basis = counts.get("train") or [p for pairs in counts.values() for p in pairs]
    values = {v for _, c in basis for v in c if v != IGNORE_INDEX and v >= 0}
    n = max(values, default=0) + 1
    classes = ClassTable([f"class_{i}" for i in range(n)])
    report.notes.append(
        f"no classes file: {n} classes inferred from the largest label value "
        "in train; add classes.txt (one name a line) to name them"
    )
    all_values = {v for pairs in counts.values() for _, c in pairs for v in c}
    if all_values == {0, IGNORE_INDEX}:
        report.notes.append(
            f"masks hold only 0 and {IGNORE_INDEX}: {IGNORE_INDEX} is the ignore "
            "index; if it marks the foreground, save the masks with 1 instead"
        )
    for pairs in counts.values():
        for item, c in pairs:
            bad = _bad_values(c, n)
            if bad:
                report.problems.append((item.mask, _label_problem(c, bad, n)))
    return classes


def _class_notes(report: CheckReport) -> None:
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


def _open_mask_folder(root: Path, split_names: list[str], report: CheckReport):
    """The mask-folder reader stops at the first unpaired file; here every split is paired
    leniently so that all orphans are reported, and classes are not inferred up front (that
    would decode every mask, even in the fast check)."""
    from .readers.mask_folder import MaskFolderSource

    cfile = find_classes_file(root)
    if cfile is not None:
        classes, colour_masks = read_classes_file(cfile)
    else:
        classes, colour_masks = ClassTable(["class_0"]), False
    sources = {}
    for split in split_names:
        if (root / split / "images").is_dir() and (root / split / "masks").is_dir():
            image_dir, mask_dir, listed, split_file = (
                root / split / "images",
                root / split / "masks",
                None,
                None,
            )
        else:
            image_dir, mask_dir, split_file = root / "images", root / "masks", root / f"{split}.txt"
            lines = split_file.read_text().splitlines()
            listed = [Path(s.split()[0]).stem for s in lines if s.strip()]
        images = _by_stem(list_images(image_dir), report)
        masks = _by_stem(list_images(mask_dir), report)
        items = []
        for stem in listed if listed is not None else sorted(images):
            if stem not in images:
                report.problems.append(
                    (split_file, f"{stem!r} is listed but {image_dir} has no image of that name")
                )
                continue
            items.append(Item(images[stem], masks.get(stem, mask_dir / f"{stem}.png"), stem))
        report.problems += [
            (m, f"mask has no image in {image_dir}") for s, m in masks.items() if s not in images
        ]
        if not items:
            report.problems.append((image_dir, f"no images for split {split}"))
        sources[split] = MaskFolderSource(items, classes, root, split, colour_masks=colour_masks)
    return sources, cfile is not None


def _by_stem(paths: list[Path], report: CheckReport) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        if p.stem in out:
            report.problems.append(
                (
                    p,
                    f"duplicate name: {out[p.stem].name} has the same stem "
                    f"{p.stem!r}, so the pairing is ambiguous",
                )
            )
        else:
            out[p.stem] = p
    return out
