"""Fixtures for the deployment tests: tiny scenes and tiny trained runs of any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelseg import load_config, train
from pixelseg.data.scenes import write_scenes

# Small knobs per model: an epoch of 2 steps on 32x40 scenes takes about a second.
KNOBS = {
    "unet": ["model.width=4", "model.depth=2"],
    "deeplab": ["model.width=8"],
    "lightseg": ["model.width=8"],
    "renet": ["model.embed_dim=8", "model.hidden_size=8"],
    "reseg": ["model.width=4", "model.hidden_size=8"],
    "unet-renet": ["model.width=4", "model.depth=2", "model.context=renet"],
    # ImageNet-pretrained encoders: size-dependent SAME padding must export with dynamic H, W.
    "lightseg-lite0": ["model.width=8", "model.encoder=efficientnet_lite0"],
    "reseg-lite0": ["model.width=4", "model.hidden_size=8", "model.encoder=efficientnet_lite0"],
}


@pytest.fixture(scope="session")
def deploy_scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deploy-scenes")
    write_scenes(root, {"train": 8, "val": 4, "test": 6}, size=(32, 40), progress=False)
    return root


@pytest.fixture(scope="session")
def trained_run(deploy_scenes, tmp_path_factory):
    """``trained_run("lightseg", "data.resize=[24,32]")`` -> a run folder (cached per args)."""
    cache: dict[tuple, Path] = {}
    out = tmp_path_factory.mktemp("deploy-runs")

    def make(key: str = "unet", *overrides: str) -> Path:
        if (key, overrides) not in cache:
            name = f"{key}-{len(cache)}"
            cfg = load_config(
                overrides=[
                    f"data.root={deploy_scenes}",
                    f"out_dir={out}",
                    f"name={name}",
                    f"model.name={key.split('-')[0]}",
                    *KNOBS[key],
                    "train.epochs=1",
                    "train.max_steps_per_epoch=2",
                    "train.batch_size=4",
                    "train.device=cpu",
                    *overrides,
                ]
            )
            cache[(key, overrides)] = train(cfg, progress=False).run_dir
        return cache[(key, overrides)]

    return make
