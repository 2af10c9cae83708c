"""Batches of images of one size: the one grouping rule that evaluation's loader
(``engine/loaders.collate_by_size``), batch prediction (``deploy/batch_pipeline``) and the
server's micro-batcher (``deploy/serve/batcher``) share.

Images of different sizes never share a forward pass: padding them to one size would change
what the model sees near the padded edges, so each size goes through on its own, exactly as
one image alone would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def same_size_batches(
    items: Iterable[T],
    size_of: Callable[[T], tuple[int, ...] | None],
    max_items: int = 0,
    max_pixels: int = 0,
    more_ready: Callable[[list[T]], bool] | None = None,
    keep_order: bool = True,
) -> Iterator[list[T]]:
    """Group ``items`` into batches whose ``size_of`` (an image's or mask's shape, height and
    width first) is the same.

    A stream (``keep_order``, the default) is cut into runs of consecutive items: a batch is
    handed on when the next item has another size, when it holds ``max_items`` items, when
    adding the next would pass ``max_pixels`` (height x width, summed; 0: no bound), or when
    ``more_ready(batch)`` says nothing more is coming soon (a slow disk or a quiet server
    never holds back the model). An item whose size is None (an image that could not be read)
    comes through alone, without closing the batch being filled. A single item is never
    split, whatever its pixels.

    With ``keep_order=False`` the items are all at hand and grouped across the whole list:
    one batch per size, in the order the sizes are first seen.

    >>> sizes = {"a": (2, 3), "b": (4, 5), "c": (2, 3)}
    >>> list(same_size_batches("abc", sizes.get))
    [['a'], ['b'], ['c']]
    >>> list(same_size_batches("abc", sizes.get, keep_order=False))
    [['a', 'c'], ['b']]
    """
    if not keep_order:
        first_seen: dict = {}
        items = sorted(
            items, key=lambda item: first_seen.setdefault(size_of(item), len(first_seen))
        )
    batch: list[T] = []
    size: tuple[int, ...] | None = None
    pixels = 0
    for item in items:
        item_size = size_of(item)
        if item_size is None:
            yield [item]
            continue
        item_pixels = item_size[0] * item_size[1]
        if batch and (item_size != size or (max_pixels and pixels + item_pixels > max_pixels)):
            yield batch
            batch = []
        if not batch:
            size, pixels = item_size, 0
        batch.append(item)
        pixels += item_pixels
        if (max_items and len(batch) >= max_items) or (more_ready and not more_ready(batch)):
            yield batch
            batch = []
    if batch:
        yield batch
