"""The command line: ``key=value`` overrides and image paths may sit before, between or after
options, as users type them."""

from __future__ import annotations

import pytest

from pixelseg.cli.main import build_parser, main, parse
from pixelseg.cli.train import cli_overrides
from pixelseg.config import load_config


def test_overrides_before_between_and_after_options():
    args = parse(
        build_parser(),
        ["train", "train.lr=3e-4", "--epochs", "2", "model.width=8", "--model", "unet", "x.y=1"],
    )
    assert args.command == "train" and args.epochs == 2 and args.model == "unet"
    assert args.overrides == ["train.lr=3e-4", "model.width=8", "x.y=1"]


def test_they_reach_the_configuration():
    args = parse(build_parser(), ["train", "train.lr=3e-4", "--epochs", "2", "model.width=8"])
    cfg = load_config(overrides=cli_overrides(args))
    assert (cfg.train.lr, cfg.train.epochs, cfg.model.knobs["width"]) == (3e-4, 2, 8)


def test_images_around_options():
    args = parse(build_parser(), ["predict", "run", "a.png", "--out", "o", "b.png"])
    assert args.out == "o" and args.images == ["a.png", "b.png"]


def test_unknown_option_and_command_still_fail(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--no-such-flag"])
    assert e.value.code == 2 and "--no-such-flag" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["no-such-command"])
