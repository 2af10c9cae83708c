import pytest

from pixelseg.config import load_config, parse_overrides
from pixelseg.errors import PixelsegError


def test_defaults_follow_the_seed():
    cfg = load_config()
    assert cfg.train.optimizer == "adam" and cfg.train.lr == 1e-3
    assert cfg.model.name == "unet"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 3\n  lr: 0.01\nmodel:\n  name: unet\n  depth: 2\n")
    cfg = load_config(path, ["train.lr=3e-4", "model.activation=gelu", "data.crop_size=[32, 48]"])
    assert cfg.train.epochs == 3
    assert cfg.train.lr == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as a string: coerced
    assert cfg.model.knobs == {"depth": 2, "activation": "gelu"}
    assert cfg.data.crop_size == [32, 48]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(overrides=["train.epochs=7", "model.width=8"])
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "override, message",
    [
        (["train.lrr=1"], "train.lrr: unknown configuration key"),
        (["bogus=1"], "bogus: unknown configuration key"),
        (["train.epochs=abc"], "train.epochs: expected an integer"),
        (["train.epochs=0"], "train.epochs: must be >= 1"),
        (["train.deterministic=maybe"], "train.deterministic: expected true or false"),
        (["train.schedule=zigzag"], "train.schedule"),
        (["data.crop_size=[1]"], "data.crop_size"),
        (["train"], "overrides are key=value"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(PixelsegError, match=message.replace("[", r"\[")):
        load_config(overrides=override)


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(PixelsegError, match="bad.yaml"):
        load_config(path)
    with pytest.raises(PixelsegError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}
