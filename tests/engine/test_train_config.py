"""The training-engine configuration keys: parsed from key=value, bad values name the key."""

from __future__ import annotations

import pytest

from pixelseg.config import load_config
from pixelseg.engine.optim import resolve_batch_size
from pixelseg.errors import PixelsegError


def test_engine_keys_parse_from_overrides():
    cfg = load_config(
        overrides=[
            "train.accumulate=4",
            "train.clip_grad_norm=1",
            "train.ema_decay=0.999",
            "train.early_stop_patience=5",
            "train.nan_rollback=true",
            "train.compile=true",
            "train.sync_bn=true",
            "train.global_batch_size=32",
            "augment.on_device=true",
        ]
    )
    t = cfg.train
    assert (t.accumulate, t.clip_grad_norm, t.ema_decay, t.early_stop_patience) == (
        4,
        1.0,
        0.999,
        5,
    )
    assert t.nan_rollback and t.compile and t.sync_bn and t.global_batch_size == 32
    assert cfg.augment.on_device is True
    assert load_config().augment.on_device == "auto"


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.accumulate=0", "train.accumulate"),
        ("train.clip_grad_norm=-1", "train.clip_grad_norm"),
        ("train.ema_decay=1.0", "train.ema_decay"),
        ("train.early_stop_patience=-2", "train.early_stop_patience"),
        ("train.nan_max_retries=-1", "train.nan_max_retries"),
        ("train.global_batch_size=0", "train.global_batch_size"),
        ("train.compile=maybe", "train.compile"),
        ("augment.on_device=sometimes", "augment.on_device"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(PixelsegError, match=key):
        load_config(overrides=[override])


def test_global_batch_is_split_over_processes_and_accumulation():
    assert resolve_batch_size(8, None, 4, 2) == 8  # batch_size is per process by default
    assert resolve_batch_size(8, 32, 4, 2) == 4  # 4 per pass x 4 processes x 2 = 32
    with pytest.raises(PixelsegError, match="train.global_batch_size"):
        resolve_batch_size(8, 30, 4, 2)
