"""The search space: the YAML format (as documented), defaults, conditional sampling, errors."""

from __future__ import annotations

import textwrap

import pytest
import torch

optuna = pytest.importorskip("optuna")

from pixelseg.config import load_config  # noqa: E402
from pixelseg.errors import PixelsegError  # noqa: E402
from pixelseg.models import create_model, list_models  # noqa: E402
from pixelseg.tuning import space as space_mod  # noqa: E402
from pixelseg.tuning.space import (  # noqa: E402
    build_space,
    default_space,
    load_space,
    local_space,
)

# The format, as a user writes it (the module docstring shows the same file).
DOCUMENTED = """
models: [unet, lightseg, reseg]     # candidate models; default: every registered model
params:                             # configuration key -> distribution
  train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
  train.batch_size: [4, 8, 16]
  train.weight_decay: null          # null: not searched, the base configuration's value
  augment.colour: {low: 0.0, high: 0.4}          # brightness = contrast = saturation
  augment.scale_jitter: {low: 0.0, high: 0.5}    # augment.scale = [1/(1+s), 1+s]
  train.optimizer: adamw            # a single value: set in every trial, not searched
knobs:                              # model knob -> distribution, for every candidate
  width: [8, 16, 32]                # model that has the knob; the others ignore it
  depth: {low: 2, high: 4}
  cell: [gru, lstm]
  embed_dim: null                   # null removes a default knob
per_model:                          # one model's own distribution for a knob (wins)
  reseg: {depth: {low: 1, high: 3}}
"""


def test_documented_example_is_the_docstring_and_loads(tmp_path):
    assert textwrap.indent(DOCUMENTED.strip(), "    ") in space_mod.__doc__
    path = tmp_path / "space.yaml"
    path.write_text(DOCUMENTED)
    space = load_space(path)
    assert space.models == ["unet", "lightseg", "reseg"]
    assert "train.weight_decay" not in space.params
    assert space.params["train.lr"].kind == "float" and space.params["train.lr"].log
    assert space.params["train.batch_size"].choices == (4, 8, 16)
    assert space.params["train.optimizer"].kind == "fixed"
    assert space.knobs["depth"].kind == "int"
    assert space.knobs_for("reseg")["depth"].high == 3  # per_model wins
    assert space.knobs_for("unet")["depth"].high == 4
    assert "cell" not in space.knobs_for("unet")  # only knobs the model has
    assert set(space.families()) == {"cnn", "rnn"}


def test_defaults_cover_every_model_and_only_their_knobs():
    space = default_space()
    assert space.models == sorted(e.name for e in list_models())
    for entry in list_models():
        assert set(space.knobs_for(entry.name)) <= set(entry.knobs())


def test_sample_is_conditional_and_gives_valid_overrides(tmp_path):
    space = default_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    seen = set()
    for _ in range(12):
        trial = study.ask()
        overrides = space.sample(trial)
        cfg = load_config(overrides=[f"data.root={tmp_path}", *overrides])
        seen.add(cfg.model.name)
        knobs = {e.name: e.knobs() for e in list_models()}[cfg.model.name]
        assert set(cfg.model.knobs) <= set(knobs)
        # Knob parameters are per model: unet's width is "unet.width".
        assert all(
            k.split(".")[0] in (cfg.model.name, "train", "augment")
            or k in ("family", "cnn_model", "rnn_model")
            for k in trial.params
        )
        assert cfg.augment.brightness == cfg.augment.contrast == cfg.augment.saturation
        lo, hi = cfg.augment.scale
        assert lo <= 1.0 <= hi
        study.tell(trial, 0.5)
    assert len(seen) > 1


def test_every_default_knob_choice_builds_and_runs():
    """The extremes of every default knob distribution are valid for every model."""
    space = default_space()
    x = torch.randn(1, 3, 48, 48)
    for entry in list_models():
        for knob, dist in space.knobs_for(entry.name).items():
            for value in dist.values():
                model = create_model(entry.name, 3, **{knob: value}).eval()
                with torch.no_grad():
                    assert model(x).shape == (1, 3, 48, 48), (entry.name, knob, value)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"modles": ["unet"]}, "modles: unknown section"),
        ({"models": ["nope"]}, "unknown model 'nope'"),
        ({"params": {"train.lr": {"low": 1, "high": 0.1}}}, "params.train.lr: low 1 is above"),
        ({"params": {"train.lr": {"low": 0, "high": 1, "log": True}}}, "log range needs low > 0"),
        ({"params": {"train.nope": [1, 2]}}, "params.train.nope"),
        ({"params": {"train.batch_size": [0, 4]}}, "train.batch_size: must be >= 1"),
        ({"params": {"model.width": [4]}}, "params.model.width: model knobs go in the knobs"),
        ({"knobs": {"nonsense": [1]}}, "knobs.nonsense: none of the candidate models"),
        ({"per_model": {"unet": {"cell": ["gru"]}}}, "per_model.unet.cell: not a knob of unet"),
        ({"params": {"train.lr": {"low": 1e-4}}}, "a range is {low, high}"),
        ({"params": {"train.lr": []}}, "empty list"),
    ],
)
def test_bad_spaces_name_the_key(data, message):
    with pytest.raises(PixelsegError, match=message.replace("(", r"\(").replace("{", r"\{")):
        build_space(data)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(PixelsegError, match="space.yaml: search space file not found"):
        load_space(tmp_path / "space.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unet\n")
    with pytest.raises(PixelsegError, match="bad.yaml: not valid YAML"):
        load_space(bad)
    bad.write_text("knobs: {nonsense: [1]}\n")
    with pytest.raises(PixelsegError, match="bad.yaml: knobs.nonsense"):
        load_space(bad)


def test_params_of_reproduces_a_configuration():
    from optuna.trial import FixedTrial

    from pixelseg.config import load_config

    space = default_space()
    base = load_config(
        overrides=[
            "model.name=unet",
            "model.width=16",
            "train.lr=3e-3",
            "augment.scale=[0.8, 1.25]",
        ]
    )
    params = space.params_of(base)
    again = load_config(overrides=space.sample(FixedTrial(params)))
    assert again.model.name == "unet" and again.model.knobs["width"] == 16
    assert again.model.knobs["depth"] == 4 and again.model.knobs["activation"] == "relu"
    assert again.train.lr == 3e-3 and again.train.batch_size == base.train.batch_size
    assert again.augment.rotation == base.augment.rotation
    assert again.augment.scale == [0.8, 1.25] and again.augment.hflip == base.augment.hflip
    assert again.augment.brightness == base.augment.brightness
    # weight decay 0 lies below the log range: clamped to its lowest value.
    assert again.train.weight_decay == space.params["train.weight_decay"].low


def test_params_of_leaves_out_what_the_space_cannot_express():
    from pixelseg.config import load_config

    space = build_space({"models": ["unet", "lightseg"], "knobs": {"width": [8, 16]}})
    assert space.params_of(load_config(overrides=["model.name=renet"])) is None
    params = space.params_of(load_config(overrides=["model.name=unet", "model.width=64"]))
    assert "unet.width" not in params  # 64 is not a choice: the sampler picks one
    assert params["cnn_model"] == "unet"


def test_local_space_searches_around_the_base_and_holds_it():
    from optuna.trial import FixedTrial

    base = load_config(
        overrides=[
            "model.name=reseg",
            "model.width=8",
            "model.depth=2",
            "train.lr=2e-3",
            "train.batch_size=6",
            "augment.rotation=0",
        ]
    )
    space = local_space(base)
    assert space.models == ["reseg"]
    lr = space.params["train.lr"]
    assert (lr.low, lr.high, lr.log) == pytest.approx((2e-3 / 3, 6e-3, True))
    assert space.params["train.batch_size"].choices == (3, 6, 12)
    assert space.params["augment.rotation"].high == 10.0  # some rotation even from none
    knobs = space.knobs_for("reseg")
    assert knobs["width"].choices == (4, 8, 16)
    assert (knobs["depth"].low, knobs["depth"].high) == (1, 3)  # not the default space's 1-3
    assert (knobs["num_layers"].low, knobs["num_layers"].high) == (1, 3)  # reseg default 2
    assert knobs["cell"].choices == ("gru", "lstm")  # categorical knobs: the default choices
    # The base configuration is a point of its own local space.
    again = load_config(overrides=space.sample(FixedTrial(space.params_of(base))))
    assert again.model.knobs["width"] == 8 and again.model.knobs["depth"] == 2
    assert again.train.lr == pytest.approx(2e-3) and again.train.batch_size == 6
