"""Fixtures: tiny datasets of every layout (built by dataset_builders.py) and a private cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from dataset_builders import (
    build_camvid,
    build_cityscapes,
    build_coco,
    build_labelme,
    build_mask_folder,
    build_voc,
    build_yolo,
)
from PIL import Image


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    return build_camvid(tmp_path / "camvid")


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return build_voc(tmp_path / "voc")


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    return build_cityscapes(tmp_path / "cityscapes")


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    pytest.importorskip("pycocotools")
    return build_coco(tmp_path / "coco")


@pytest.fixture
def mask_folder_root(tmp_path: Path) -> Path:
    return build_mask_folder(tmp_path / "maskfolder")


@pytest.fixture
def labelme_root(tmp_path: Path) -> Path:
    return build_labelme(tmp_path / "labelme")


@pytest.fixture
def yolo_root(tmp_path: Path) -> Path:
    return build_yolo(tmp_path / "yolo")


@pytest.fixture(autouse=True)
def _bomb_warnings_are_errors():
    """pytest resets warning filters per test; restore the one pixelseg.data.imageio sets."""
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Class statistics are cached under tmp_path, never in the user's cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PIXELSEG_CACHE_DIR", str(cache))
    return cache
