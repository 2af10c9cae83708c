"""Learning-rate schedules: warm-up ramp, continuity, decay to ~0, and resumability (a pure
function of the step)."""

from __future__ import annotations

import pytest

from pixelseg.engine.schedule import lr_factor

TOTAL, WARM = 100, 10


@pytest.mark.parametrize("schedule", ["cosine", "poly", "step", "none"])
def test_warmup_ramps_linearly_to_the_base_lr(schedule):
    ramp = [lr_factor(s, TOTAL, schedule, WARM) for s in range(WARM)]
    assert ramp == pytest.approx([(s + 1) / WARM for s in range(WARM)])
    assert lr_factor(WARM, TOTAL, schedule, WARM) == pytest.approx(1.0)  # no jump after warm-up


@pytest.mark.parametrize("schedule", ["cosine", "poly"])
def test_decays_monotonically_towards_zero(schedule):
    f = [lr_factor(s, TOTAL, schedule, WARM) for s in range(WARM, TOTAL)]
    assert all(a >= b for a, b in zip(f, f[1:]))
    assert 0 < f[-1] < 0.05  # the last step still learns a little
    assert lr_factor(TOTAL, TOTAL, schedule, WARM) == pytest.approx(0.0, abs=1e-12)


def test_cosine_halfway_is_half_and_poly_has_power_0_9():
    assert lr_factor(55, TOTAL, "cosine", WARM) == pytest.approx(0.5)
    assert lr_factor(55, TOTAL, "poly", WARM) == pytest.approx(0.5**0.9)


def test_step_and_none():
    assert lr_factor(0, 90, "step") == 1.0
    assert lr_factor(31, 90, "step") == pytest.approx(0.1)
    assert lr_factor(61, 90, "step") == pytest.approx(0.01)
    assert {lr_factor(s, 50, "none") for s in range(50)} == {1.0}
