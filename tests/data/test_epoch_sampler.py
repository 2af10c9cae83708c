"""The training sampler: one pass per epoch by default, or ``samples`` draws that repeat the
split (each pass in its own order, each repeat augmented differently), sharded evenly."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pixelseg.data.loader import EpochSampler, SampleKey, SegmentationDataset


def keys(sampler: EpochSampler, epoch: int = 1) -> list[SampleKey]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_default_epoch_is_one_shuffled_pass():
    got = keys(EpochSampler(7, shuffle=True, seed=3))
    assert sorted(k.index for k in got) == list(range(7))
    assert {k.draw for k in got} == {0}


def test_longer_epoch_repeats_the_split_in_new_orders():
    got = keys(EpochSampler(5, shuffle=True, seed=0, samples=12))
    assert len(got) == 12
    counts = Counter(k.index for k in got)
    assert sorted(counts.values()) == [2, 2, 2, 3, 3]  # two full passes, then 2 of the third
    passes = [[k.index for k in got if k.draw == d] for d in (0, 1)]
    assert sorted(passes[0]) == sorted(passes[1]) == list(range(5))
    # Each pass has its own order (over 20 seeds, at least one differs).
    orders = [[k.index for k in keys(EpochSampler(5, True, seed=s, samples=10))] for s in range(20)]
    assert any(o[:5] != o[5:] for o in orders)


def test_first_pass_is_the_one_pass_epoch():
    """A run without images_per_epoch draws exactly what it drew before the key existed."""
    one = keys(EpochSampler(6, shuffle=True, seed=1))
    more = keys(EpochSampler(6, shuffle=True, seed=1, samples=15))
    assert [k.index for k in more[:6]] == [k.index for k in one]


def test_shorter_epoch_and_shards():
    assert len(keys(EpochSampler(10, shuffle=False, samples=4))) == 4
    shards = [keys(EpochSampler(3, False, rank=r, world_size=2, samples=7)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4  # 7 draws padded to 8, split evenly
    assert len(EpochSampler(3, False, rank=0, world_size=2, samples=7)) == 4


def test_empty_split_draws_nothing():
    assert keys(EpochSampler(0, shuffle=True, samples=5)) == []


class _Source:
    classes = None

    def __len__(self):
        return 1

    def load(self, i):
        class S:
            image = np.zeros((4, 4, 3), np.uint8)
            mask = np.zeros((4, 4), np.uint8)

        return S()


def test_repeated_draws_are_augmented_differently():
    def transform(image, mask, rng, progress):
        return image + rng.integers(0, 255, dtype=np.uint8), mask

    ds = SegmentationDataset(_Source(), transform, seed=0)
    first, again = ds[SampleKey(1, 0, 0.0, 0)][0], ds[SampleKey(1, 0, 0.0, 0)][0]
    other = [ds[SampleKey(1, 0, 0.0, d)][0] for d in range(1, 6)]
    assert (first == again).all()  # a key is reproducible
    assert any((o != first).any() for o in other)
