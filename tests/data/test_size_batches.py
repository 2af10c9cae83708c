"""The one same-size batching rule shared by evaluation, batch prediction and the server."""

from __future__ import annotations

from pixelseg.data.size_batches import same_size_batches


def size(item):
    return item[1]


def test_a_stream_is_cut_at_each_new_size_count_and_pixel_bound():
    items = [("a", (2, 3)), ("b", (2, 3)), ("c", (2, 3)), ("d", (4, 4)), ("e", (2, 3))]
    names = [[n for n, _ in b] for b in same_size_batches(items, size, max_items=2)]
    assert names == [["a", "b"], ["c"], ["d"], ["e"]]
    names = [[n for n, _ in b] for b in same_size_batches(items, size, max_pixels=13)]
    assert names == [["a", "b"], ["c"], ["d"], ["e"]]
    big = [("x", (10, 10))]  # one image over the pixel bound still goes through, alone
    assert list(same_size_batches(big, size, max_pixels=13)) == [big]


def test_an_unreadable_item_comes_alone_and_a_quiet_source_closes_the_batch():
    items = [("a", (2, 3)), ("bad", None), ("b", (2, 3))]
    batches = list(same_size_batches(items, size, max_items=4))
    assert [[n for n, _ in b] for b in batches] == [["bad"], ["a", "b"]]
    quiet = list(same_size_batches(items, size, max_items=4, more_ready=lambda batch: False))
    assert [[n for n, _ in b] for b in quiet] == [["a"], ["bad"], ["b"]]


def test_a_whole_batch_at_hand_is_grouped_by_size_in_first_seen_order():
    items = [("a", (2, 3)), ("b", (4, 4)), ("c", (2, 3))]
    groups = same_size_batches(items, size, keep_order=False)
    assert [[n for n, _ in g] for g in groups] == [["a", "c"], ["b"]]
