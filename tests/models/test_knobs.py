"""Each knob is declared once (models/knobs.py): the declaration matches the constructor, every
bad value is an error naming ``model.<knob>``, the tuner's default distributions lie inside the
declared ranges, and ``pixelseg models`` shows them."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from pixelseg.cli.main import main
from pixelseg.cli.models import show_value
from pixelseg.errors import PixelsegError
from pixelseg.models import Knob, create_model, list_models, register_model
from pixelseg.models.registry import constructor_knobs
from pixelseg.tuning.space import default_space

KNOBS = [(e.name, k) for e in list_models() for k in e.declared]
KNOB_IDS = [f"{name}.{k.name}" for name, k in KNOBS]


@pytest.mark.parametrize("entry", list_models(), ids=lambda e: e.name)
def test_declared_defaults_are_the_constructors_and_build(entry):
    assert entry.knobs() == constructor_knobs(entry.cls)
    assert all(k.help for k in entry.declared), "every knob has a one-line help"
    with torch.device("meta"):  # shapes only: instant
        model = create_model(entry.name, 3)
    assert model.pixelseg_spec["knobs"] == entry.knobs()


def _bad_values(knob: Knob) -> list:
    """Values of the right type that the declaration rules out."""
    if knob.choices is not None:
        if knob.type is str:
            return ["nope"]
        return [max(knob.choices) + 100, min(knob.choices) - 100]
    bad = []
    if knob.low is not None:
        bad.append(knob.low - 1)
    if knob.high is not None:
        bad.append(knob.high if knob.high_open else knob.high + 1)
    if knob.odd:
        bad.append(4)
    if knob.type is float:
        bad = [float(v) for v in bad]
    if "list" in knob.type_text():
        bad = [[v] for v in bad] + [[]]
    return bad


@pytest.mark.parametrize("name,knob", KNOBS, ids=KNOB_IDS)
def test_a_value_outside_the_declaration_names_the_key(name, knob):
    bad = _bad_values(knob)
    if not bad:
        pytest.skip("every value of its type is valid")
    for value in bad:
        with pytest.raises(PixelsegError) as info:
            create_model(name, 3, **{knob.name: value})
        message = str(info.value)
        assert re.match(rf"model\.{knob.name}: must ", message), message
        assert f"a knob of {name!r}; see `pixelseg models`" in message


def test_error_messages_say_what_is_valid():
    cases = [
        ("unet", {"width": 0}, "model.width: must be >= 1, got 0 (a knob of 'unet'"),
        ("unet", {"activation": "swish9"}, "model.activation: must be one of relu, leaky_relu"),
        ("deeplab", {"dropout": 1.0}, "model.dropout: must be in [0, 1), got 1.0"),
        ("lightseg", {"kernel_size": 4}, "model.kernel_size: must be odd, >= 1, got 4"),
        ("deeplab", {"dilations": [3, 0]}, "model.dilations: must be >= 1, got 0 (item of [3, 0])"),
        ("deeplab", {"dilations": []}, "model.dilations: must not be empty"),
        ("unet", {"nope": 1}, "model.nope: not a knob of 'unet'; its knobs are width, depth"),
    ]
    for name, knobs, needle in cases:
        with pytest.raises(PixelsegError, match=re.escape(needle)):
            create_model(name, 3, **knobs)


def test_values_inside_the_declaration_are_taken():
    knob = Knob("p", float, 0.0, low=0.0, high=1.0, high_open=True, help="a rate")
    assert knob.check("3e-1") == 0.3 and knob.check(0) == 0.0
    items = Knob("rates", tuple[int, ...], (1, 2), low=1, help="rates")
    assert items.check([1, 5]) == [1, 5] and items.check(2) == 2  # one item for a list
    with pytest.raises(ValueError, match="expected a list of integers"):
        items.check(["a"])


@pytest.mark.parametrize("entry", list_models(), ids=lambda e: e.name)
def test_default_search_lies_inside_the_declared_ranges(entry):
    dists = default_space().knobs_for(entry.name)
    assert dists, "every model has something to tune"
    for name, dist in dists.items():
        knob = entry.knob(name)
        assert dist.kind in ("categorical", "int"), (name, dist)
        values = (
            list(dist.choices)
            if dist.kind == "categorical"
            else list(range(int(dist.low), int(dist.high) + 1))
        )
        for value in values:
            knob.check(value)  # raises if outside the declaration
    declared = {k.name for k in entry.declared if k.search is not None}
    assert set(dists) == declared


def test_space_file_knobs_override_the_declared_search():
    space = default_space()
    assert space.knobs_for("reseg")["depth"].high == 3  # reseg declares 1..3, unet 2..4
    assert space.knobs_for("unet")["depth"].high == 4
    from pixelseg.tuning.space import build_space

    space = build_space({"knobs": {"depth": [2], "width": None}, "per_model": {"unet": {}}})
    assert space.knobs_for("reseg")["depth"].choices == (2,)  # for every model with the knob
    assert "width" not in space.knobs_for("unet")  # null: not searched
    space = build_space({"per_model": {"reseg": {"cell": None}}})
    assert "cell" not in space.knobs_for("reseg") and "cell" in space.knobs_for("renet")


def test_a_declaration_that_drifts_from_the_constructor_fails_at_registration():
    class Tiny(nn.Module):
        def __init__(self, num_classes: int, in_channels: int = 3, *, width: int = 8) -> None:
            super().__init__()

    with pytest.raises(ValueError, match="declares default 16, the constructor has 8"):
        register_model("tiny-drift", "x", knobs=[Knob("width", int, 16, low=1, help="w")])(Tiny)
    with pytest.raises(ValueError, match="not the constructor's"):
        register_model("tiny-missing", "x", knobs=[])(Tiny)
    with pytest.raises(ValueError, match="knob width's default is not valid: must be >= 9"):
        register_model("tiny-invalid", "x", knobs=[Knob("width", int, 8, low=9, help="w")])(Tiny)
    assert not {"tiny-drift", "tiny-missing", "tiny-invalid"} & {e.name for e in list_models()}


def test_cli_models_lists_every_knob_with_its_range_and_help(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    blocks = dict(re.findall(r"^(\S+)  \[\w+\].*\n((?:    .*\n)*)", out, re.M))
    for name, knob in KNOBS:
        row = f"    {knob.name}={show_value(knob.default)} "
        assert any(
            line.startswith(row) and knob.help in line for line in blocks[name].splitlines(True)
        ), (name, knob.name)
    assert "width=32" in out and "(integer >= 1; tuned: 8, 16, 32)" in out
    assert "(odd integer >= 1; tuned: 3, 5)" in out
    assert "one of relu, leaky_relu, gelu, silu, elu, tanh, mish; tuned: relu, gelu, silu" in out
    assert "dropout=0.1" in out and "(number in [0, 1))" in out
    assert "depth=2" in out and "(integer >= 0; tuned: 1..3)" in out


def test_cli_models_json_has_the_declarations(capsys):
    import json

    assert main(["models", "--json"]) == 0
    data = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    unet = data["unet"]
    assert unet["knobs"]["width"] == 32
    assert unet["knob_specs"]["depth"]["search"] == {"low": 2, "high": 4}
    assert unet["knob_specs"]["context"]["choices"] == ["none", "renet"]
    assert data["deeplab"]["knob_specs"]["dilations"]["default"] == [6, 12, 18]


def test_cli_summary_lists_given_knobs_then_the_declared_defaults(capsys):
    argv = "summary --model reseg --size 33 --meta width=4 hidden_size=8 num_layers=1"
    assert main(argv.split()) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        "model: reseg  width=4 hidden_size=8 num_layers=1  "
        "(defaults: depth=2 kernel_size=3 activation=relu norm=batch cell=gru encoder=native "
        "pretrained=imagenet)"
    )
