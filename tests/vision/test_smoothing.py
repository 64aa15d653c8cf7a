"""One-Euro filter: kills jitter at rest, little lag in motion, the same at any face size."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.vision.smoothing import OneEuroFilter


def _ramp_lag(speed: float, size: float) -> float:
    """Steady-state lag (px) behind a point moving at ``speed`` face sizes per second."""
    f = OneEuroFilter()
    x = y = np.zeros((1, 2))
    for k in range(90):
        t = k / 30.0
        x = np.array([[speed * size * t, 0.0]])
        y = f(x, t, size)
    return float(x[0, 0] - y[0, 0])


@pytest.mark.parametrize("speed", [0.05, 0.25, 1.0, 3.0])
def test_lag_in_motion_is_small(speed: float) -> None:
    # Under 0.5% of the face region (1.5 px on a 300-px region) at any speed: the
    # cutoff rises with speed, so the lag in time shrinks as the motion gets faster.
    lag = _ramp_lag(speed, 300.0)
    assert 0.0 < lag < 0.005 * 300.0
    assert lag / (speed * 300.0) < 0.05  # seconds behind


def test_lag_scales_with_the_face() -> None:
    near, far = _ramp_lag(0.5, 600.0), _ramp_lag(0.5, 60.0)
    assert near == pytest.approx(10.0 * far, rel=1e-9)


def test_jitter_at_rest_is_removed() -> None:
    rng = np.random.default_rng(7)
    size = 300.0
    f = OneEuroFilter()
    raw, out = [], []
    for k in range(300):
        x = np.full((468, 3), 150.0) + rng.normal(0.0, 0.1, (468, 3))  # 0.1 px sensor jitter
        raw.append(x)
        out.append(f(x, k / 30.0, size))
    before = np.array(raw)[30:].std(axis=0).mean()
    after = np.array(out)[30:].std(axis=0).mean()
    assert after < before / 3.0, (before, after)


def test_shape_dtype_and_first_sample() -> None:
    f = OneEuroFilter()
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    first = f(x, 0.0, 100.0)
    assert first.dtype == np.float32 and np.array_equal(first, x)
    second = f(x + 1.0, 0.0, 100.0)  # same timestamp: a nominal frame step, no division by 0
    assert np.all(np.isfinite(second)) and np.all((second > x) & (second < x + 1.0))
    other = f(np.zeros((2, 2), np.float32), 0.1, 100.0)  # another shape starts afresh
    assert other.shape == (2, 2) and not other.any()


def test_lag_points_along_the_motion() -> None:
    """One cutoff per point from its 2-D speed: the lag is parallel to the motion (a cutoff
    per coordinate would lag the slow axis more, bending the path)."""
    f = OneEuroFilter()
    step = np.array([6.0, 1.0])
    x = out = np.zeros((1, 2))
    for k in range(40):
        x = (k * step)[None, :]
        out = f(x, k / 30.0, 100.0)
    lag = (x - out)[0]
    assert lag[1] / lag[0] == pytest.approx(step[1] / step[0], rel=1e-6)
