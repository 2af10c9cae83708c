"""Fixtures for the training-engine tests: one tiny scene dataset, tiny run configurations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelseg.config import RunConfig, load_config
from pixelseg.data.scenes import write_scenes

# A 2-level U-Net of width 4 on 32x32 images: a step takes milliseconds on one core.
# GroupNorm (not BatchNorm) so that results do not depend on how a batch is split.
TINY = [
    "model.width=4",
    "model.depth=2",
    "model.norm=group",
    "train.batch_size=4",
    "train.threads=1",
    "train.device=cpu",
    "augment.enabled=false",
    "train.epochs=1",
]


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engine-scenes")
    write_scenes(root, {"train": 8, "val": 4}, size=(32, 32), progress=False)
    return root


@pytest.fixture
def make_cfg(scenes, tmp_path):
    """``make_cfg("name", "train.epochs=2", ...)`` -> a RunConfig writing under tmp_path."""

    def make(name: str, *overrides: str) -> RunConfig:
        return load_config(
            overrides=[
                f"data.root={scenes}",
                f"out_dir={tmp_path / 'runs'}",
                f"name={name}",
                *TINY,
                *overrides,
            ]
        )

    return make


@pytest.fixture(autouse=True)
def restore_threads():
    # train.threads sets the process-wide thread count; give the next test what it had.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
