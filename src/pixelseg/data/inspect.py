"""One inspection of a dataset item and of a split, used by every consumer alike.

The training pre-check (``preflight.py``) and ``pixelseg check-data`` (``check.py``) both call
``inspect_split``, so whatever one calls a problem the other does too; the class statistics
and the fingerprint read the same file facts (``file_facts.py``) that the inspection fills.

    split = inspect_split(source, "full")     # every item, plus the reader's layout problems
    split.problems                            # [(path, message)]: would fail or corrupt training
    split.items[0].warnings, .size, .counts   # per item

Levels: ``full`` (before every training, and ``check-data``) reads every image through
(``read_header(verify=True)``) and decodes every mask (size, label counts); ``fast``
(``check-data --fast``) reads headers only, except that a PNG or JPEG whose end marker is
missing is read through to confirm it is truncated. Both are cached per file: a second start
only stats files.

Problems: unreadable, truncated or empty files; an image without a mask or a mask without an
image; size mismatches (the image's EXIF orientation applied, as ``read_image`` reads it);
label values that are no class id; colour masks that cannot be mapped; images over the
decompression-bomb limit; two items with the same name. Warnings are inputs that are converted
on the fly but may not be what was meant: 16-bit, alpha, grayscale or CMYK images, EXIF
rotation, JPEG masks, masks with no labelled pixel.

Readers help through two optional methods on their source: ``layout_problems() -> [(path,
message)]`` (orphan files, bad index entries; a problem naming an item's image is that item's)
and ``mask_size(item) -> (H, W)`` for label maps that are not image files (COCO).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..constants import IGNORE_INDEX
from ..errors import PixelsegError
from .file_facts import SWAPS_SIDES, BadFile, FileFacts, ImageFacts
from .parallel import map_items
from .sample import Item
from .source import SegmentationSource, label_values_message

Problem = tuple[Path, str]
LEVELS = ("fast", "full")

ORIENTATIONS = {
    2: "mirrored",
    3: "rotated 180",
    4: "flipped",
    5: "mirrored and rotated 90",
    6: "rotated 90",
    7: "mirrored and rotated 270",
    8: "rotated 270",
}
MAX_LABEL_COLOURS = 256  # an RGB mask with at most this many colours looks colour-coded
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(slots=True)
class ItemReport:
    """What the inspection found. Clean items hold empty tuples, not lists: 100k reports with
    two lists each would make every garbage collection of a start-up traverse 200k more."""

    item: Item
    problems: list[Problem] | tuple = ()
    warnings: list[Problem] | tuple = ()
    size: tuple[int, int] | None = None  # image (H, W) as read (upright)
    counts: dict[int, int] | None = None  # full level: mask value -> pixels

    def problem(self, path: Path, message: str) -> None:
        self.problems = [*self.problems, (path, message)]

    def warn(self, path: Path, messages: list[str]) -> None:
        if messages:
            self.warnings = [*self.warnings, *((path, m) for m in messages)]


@dataclass
class SplitInspection:
    source: SegmentationSource
    items: list[ItemReport]
    layout: list[Problem]  # problems that belong to no item (orphan masks, index entries)

    @property
    def problems(self) -> list[Problem]:
        return self.layout + [p for r in self.items for p in r.problems]


def _image_warnings(h: ImageFacts) -> list[str]:
    if h.mode == "RGB" and not h.alpha and h.orientation == 1:
        return []  # the common case, quickly: 100k items are inspected at every start
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


def _mask_warnings(path: Path, orientation: int) -> list[str]:
    out = []
    if str(path).lower().endswith((".jpg", ".jpeg")):
        out.append(
            "mask saved as JPEG: lossy compression changes label values along edges; use PNG"
        )
    if orientation in ORIENTATIONS:
        out.append(
            f"mask has EXIF orientation {orientation}: masks are read as stored, not rotated"
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


def _colour_summary(path: Path) -> str:
    try:
        with Image.open(path) as img:
            colours = img.convert("RGB").getcolors(MAX_LABEL_COLOURS)
    except Exception:
        return "RGB mask"
    if colours is None:
        return f"RGB mask with over {MAX_LABEL_COLOURS} colours (a photo? a JPEG-compressed mask?)"
    return f"RGB mask with {len(colours)} distinct colours (looks like a colour-coded label map)"


def _strip(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _image(facts: FileFacts, item: Item, level: str, res: ItemReport) -> ImageFacts | None:
    try:
        img = facts.image_facts(item.image, verified=level == "full")
        if level == "fast" and not img.verified and _missing_end_marker(item.image, img.format):
            img = facts.image_facts(item.image, verified=True)
    except BadFile as e:
        msg = "image file not found" if e.message == "file not found" else e.message
        res.problem(e.path, msg)
        return None
    res.size = img.upright
    res.warn(item.image, _image_warnings(img))
    return img


def _mask_size(source, facts: FileFacts, item: Item, level: str, res: ItemReport):
    """(H, W) of the item's label map, and at the full level its counts; None when unusable."""
    sized = getattr(source, "mask_size", None)  # label maps that are not image files
    known = facts.mask(item)
    if known is None and sized is None and not item.mask.is_file():
        res.problem(item.image, f"image has no mask (expected {item.mask})")
        return None
    # A problem is filed under the file to fix: the label file, unless labels are not one file
    # per item (COCO's shared JSON: then the image), or the error names the image itself.
    per_item = sized is None or getattr(source, "label_file_per_item", False)
    mask_path = item.mask if per_item else item.image
    try:
        if level == "full":
            known = known or facts.mask_facts(item, source.decode_mask, header=sized is None)
        elif known is None and sized is not None:
            return sized(item)
        elif known is None:
            head = facts.image_facts(item.mask, verified=False)
            if _missing_end_marker(item.mask, head.format):
                facts.image_facts(item.mask, verified=True)
            res.warn(item.mask, _mask_warnings(item.mask, head.orientation))
            return head.height, head.width
    except BadFile as e:
        res.problem(e.path, e.message)
        return None
    except PixelsegError as e:
        if str(e).startswith(f"{item.image}: "):
            mask_path = item.image
        msg = _strip(str(e), mask_path)
        if sized is None and msg.startswith("mask is a colour (RGB) image"):
            msg = f"{_colour_summary(item.mask)}: {msg}"
        res.problem(mask_path, msg)
        return None
    if sized is None:
        res.warn(item.mask, _mask_warnings(item.mask, known.orientation))
    if level == "full":
        res.counts = known.counts
        n = source.classes.num_classes
        bad = known.bad_values(n)
        if bad:
            pixels = sum(known.counts[v] for v in bad)
            msg = f"{label_values_message(bad, n)} ({pixels:,} pixels)"
            res.problem(mask_path, msg)
        if len(known.counts) == 1 and IGNORE_INDEX in known.counts:
            res.warn(mask_path, [f"mask has no labelled pixel (all {IGNORE_INDEX} = ignore)"])
    return known.height, known.width


def inspect_item(
    source: SegmentationSource, item: Item, facts: FileFacts, level: str = "full"
) -> ItemReport:
    """Everything wrong (problems) or surprising (warnings) with one item; see the module
    docstring for the levels. Never raises for a bad file."""
    if level not in LEVELS:
        raise ValueError(f"inspection level {level!r}: choose from {', '.join(LEVELS)}")
    res = ItemReport(item)
    img = _image(facts, item, level, res)
    if item.mask is None:
        return res
    mask_hw = _mask_size(source, facts, item, level, res)
    if img and mask_hw and img.upright != tuple(mask_hw):
        (h, w), (mh, mw) = img.upright, mask_hw
        msg = f"mask is {mh}x{mw} but image {item.image.name} is {h}x{w}"
        if img.orientation in SWAPS_SIDES and (img.height, img.width) == tuple(mask_hw):
            msg += (
                " once turned upright by its EXIF orientation; the mask matches the stored "
                "pixels: rotate the mask or remove the image's EXIF orientation tag"
            )
        sized = getattr(source, "mask_size", None)
        res.problem(item.image if sized else item.mask, msg)
    return res


def inspect_split(
    source: SegmentationSource,
    level: str = "full",
    workers: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> SplitInspection:
    """Inspect every item of ``source`` (on a thread pool), add the reader's layout problems
    and duplicate item names, and save what was learnt in the split's file facts."""
    facts = source.file_facts()
    if level == "full":
        source.classes  # noqa: B018 -- a lazily inferred class table: once, before the threads
    reports = map_items(
        lambda it: inspect_item(source, it, facts, level),
        source.items,
        workers,
        progress,
        desc or f"checking {source.split} data",
    )
    facts.save()
    layout = []
    layout_problems = getattr(source, "layout_problems", None)
    found = layout_problems() if layout_problems else []
    by_image = {r.item.image: r for r in reports} if found else {}
    for path, msg in found:
        if Path(path) in by_image:
            by_image[Path(path)].problem(Path(path), msg)
        else:
            layout.append((Path(path), msg))
    names = Counter(r.item.name for r in reports)  # no list per item: see ItemReport
    by_name: dict[str, list[ItemReport]] = defaultdict(list)
    for r in reports:
        if names[r.item.name] > 1:
            by_name[r.item.name].append(r)
    for name, same in by_name.items():
        if same:
            files = ", ".join(r.item.image.name for r in same)
            for r in same:
                r.problem(
                    r.item.image,
                    f"duplicate name {name!r} in {source.split}: {files} have the same "
                    "name, so the pairing with masks is ambiguous",
                )
    return SplitInspection(source, reports, layout)
