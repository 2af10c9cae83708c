"""Property-based tests (hypothesis) of configuration overrides: every typed key takes what
its type allows, refuses the rest naming the key, and the resolved config round-trips."""

from __future__ import annotations

import dataclasses
import string

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pixelseg.config import RunConfig, load_config, parse_overrides  # noqa: E402
from pixelseg.errors import PixelsegError  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, database=None)  # writes nothing
positive_ints = st.integers(1, 10**6)
positive_floats = st.floats(1e-8, 1e3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(epochs=positive_ints, batch=positive_ints, lr=positive_floats, seed=st.integers(0, 2**31))
def test_typed_overrides_set_exactly_their_value(epochs, batch, lr, seed):
    cfg = load_config(
        overrides=[
            f"train.epochs={epochs}",
            f"train.batch_size={batch}",
            f"train.lr={lr!r}",
            f"train.seed={seed}",
        ]
    )
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seed) == (epochs, batch, seed)
    assert cfg.train.lr == pytest.approx(lr) and isinstance(cfg.train.lr, float)


@SETTINGS
@given(values=st.lists(positive_ints, min_size=1, max_size=5))
def test_the_last_override_of_a_key_wins(values):
    cfg = load_config(overrides=[f"train.epochs={v}" for v in values])
    assert cfg.train.epochs == values[-1]


@SETTINGS
@given(epochs=st.integers(-(10**6), 0))
def test_out_of_range_values_name_the_key(epochs):
    with pytest.raises(PixelsegError, match="train.epochs: must be >= 1"):
        load_config(overrides=[f"train.epochs={epochs}"])


section_keys = {
    name: {f.name for f in dataclasses.fields(getattr(RunConfig(), name))}
    for name in ("data", "augment", "train")
}
identifiers = st.text(string.ascii_lowercase + "_", min_size=1, max_size=15)


@SETTINGS
@given(section=st.sampled_from(sorted(section_keys)), key=identifiers)
def test_unknown_keys_are_errors_naming_the_key(section, key):
    hypothesis.assume(key not in section_keys[section])
    with pytest.raises(PixelsegError, match=f"{section}.{key}: unknown configuration key"):
        load_config(overrides=[f"{section}.{key}=1"])


@SETTINGS
@given(word=st.text(string.ascii_letters, min_size=1, max_size=8))
def test_integer_keys_refuse_words(word):
    hypothesis.assume(word.lower() not in {"null", "nan", "inf", "y", "n"})
    with pytest.raises(PixelsegError, match="train.batch_size"):
        load_config(overrides=[f"train.batch_size={word}"])


@settings(SETTINGS, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    epochs=positive_ints,
    crop=st.tuples(st.integers(1, 4096), st.integers(1, 4096)),
    hflip=st.floats(0, 1),
    knob=st.integers(1, 64),
)
def test_resolved_config_round_trips_through_yaml(tmp_path, epochs, crop, hflip, knob):
    cfg = load_config(
        overrides=[
            f"train.epochs={epochs}",
            f"data.crop_size=[{crop[0]}, {crop[1]}]",
            f"augment.hflip={hflip!r}",
            f"model.width={knob}",
        ]
    )
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path).to_dict() == cfg.to_dict()
    assert parse_overrides([f"a.b.c={knob}"]) == {"a": {"b": {"c": knob}}}
