"""The fast checks ``pixelseg train`` runs before training starts.

Images are opened and verified without a full decode; masks are decoded (they are small)
so wrong label values are found now rather than in epoch 7. A bad sample stops the run with
a message naming the file, or, with ``skip_bad``, is dropped and reported. What the checks
learn about each file is cached (``file_facts.py``): a second start on unchanged files only
stats them.
"""

from __future__ import annotations

from ..errors import PixelsegError
from .file_facts import FileFacts
from .parallel import map_items
from .source import Item, SegmentationSource, check_labels


def check_item(source: SegmentationSource, item: Item, facts: FileFacts) -> str | None:
    """None when the item looks loadable, else a one-line problem naming the file."""
    try:
        try:
            image = facts.image(item) or facts.learn_image(item)
        except Exception as e:  # PIL raises many types for broken files
            if not item.image.is_file():
                return f"{item.image}: file not found"
            if item.image.stat().st_size == 0:
                return f"{item.image}: file is empty (0 bytes)"
            return f"{item.image}: unreadable or truncated image ({e})"
        if item.mask is None:
            return None
        mask = facts.mask(item) or facts.learn_mask(item, source.decode_mask(item))
        if (mask.width, mask.height) != (image.width, image.height):
            return (
                f"{item.mask}: mask is {mask.height}x{mask.width} but image "
                f"{item.image.name} is {image.height}x{image.width}"
            )
        if not mask.labels_fit(source.classes.num_classes):
            # Decode again (rare) for a message that lists the bad values.
            check_labels(source.decode_mask(item), source.classes.num_classes, item.mask)
    except PixelsegError as e:
        return str(e)
    return None


def preflight(
    sources: list[SegmentationSource], skip_bad: bool = False, progress: bool = True
) -> list[tuple[str, str]]:
    """Check every item; drop bad ones when ``skip_bad`` (returns (file, problem) pairs)."""
    skipped: list[tuple[str, str]] = []
    for source in sources:
        facts = source.file_facts()
        results = map_items(
            lambda it, s=source, f=facts: check_item(s, it, f),
            source.items,
            progress=progress,
            desc=f"checking {source.split} data",
        )
        facts.save()
        problems = [(item, p) for item, p in zip(source.items, results) if p]
        if problems and not skip_bad:
            more = (
                f" (and {len(problems) - 1} more problems; see pixelseg check-data)"
                if len(problems) > 1
                else ""
            )
            raise PixelsegError(problems[0][1] + more)
        if problems:
            bad = {id(item) for item, _ in problems}
            source.items = [it for it in source.items if id(it) not in bad]
            skipped += [(str(item.image), p) for item, p in problems]
            if not source.items:
                raise PixelsegError(f"{source.root}: every {source.split} sample is bad")
    return skipped
