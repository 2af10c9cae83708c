"""Tiny data, a tiny search space and a private class-stats cache for the tuning tests."""

from __future__ import annotations

import pytest

from pixelseg.data.scenes import write_scenes

TINY_SPACE = """
models: [unet, lightseg]
params:
  train.batch_size: [2, 4]
knobs:
  width: [4]
  depth: {low: 1, high: 2}
  kernel_size: [3]
"""


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-scenes")
    write_scenes(root, {"train": 8, "val": 4}, size=(32, 32), progress=False)
    return root


@pytest.fixture
def tiny_space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PIXELSEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
