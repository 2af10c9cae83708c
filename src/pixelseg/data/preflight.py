"""The fast checks ``pixelseg train`` runs before training starts.

Images are opened and verified without a full decode; masks are decoded (they are small)
so wrong label values are found now rather than in epoch 7. A bad sample stops the run with
a message naming the file, or, with ``skip_bad``, is dropped and reported.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from PIL import Image
from tqdm import tqdm

from ..errors import PixelsegError
from .source import Item, SegmentationSource, check_labels


def check_item(source: SegmentationSource, item: Item) -> str | None:
    """None when the item looks loadable, else a one-line problem naming the file."""
    try:
        try:
            with Image.open(item.image) as img:
                img.verify()  # checks structure (PNG CRCs, truncation) without decoding
                size = img.size
        except Exception as e:  # PIL raises many types for broken files
            if not item.image.is_file():
                return f"{item.image}: file not found"
            if item.image.stat().st_size == 0:
                return f"{item.image}: file is empty (0 bytes)"
            return f"{item.image}: unreadable or truncated image ({e})"
        if item.mask is None:
            return None
        mask = source.decode_mask(item)
        if (mask.shape[1], mask.shape[0]) != size:
            return (
                f"{item.mask}: mask is {mask.shape[0]}x{mask.shape[1]} but image "
                f"{item.image.name} is {size[1]}x{size[0]}"
            )
        check_labels(mask, source.classes.num_classes, item.mask)
    except PixelsegError as e:
        return str(e)
    return None


def preflight(
    sources: list[SegmentationSource], skip_bad: bool = False, progress: bool = True
) -> list[tuple[str, str]]:
    """Check every item; drop bad ones when ``skip_bad`` (returns (file, problem) pairs)."""
    skipped: list[tuple[str, str]] = []
    total = sum(len(s) for s in sources)
    with (
        ThreadPoolExecutor(4) as pool,
        tqdm(
            total=total, desc="checking data", unit="file", leave=False, disable=not progress
        ) as bar,
    ):
        for source in sources:
            problems = []
            for item, problem in zip(
                source.items, pool.map(lambda it, s=source: check_item(s, it), source.items)
            ):
                bar.update()
                if problem:
                    problems.append((item, problem))
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
