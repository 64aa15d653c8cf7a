"""The iris and lid fit on drawn eyes, where the truth is exact: an almond-shaped opening
(white) in skin, a dark iris disc under both lids, anti-aliased and slightly blurred like
a camera's picture; the mesh's contour is given, sometimes off the margins."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from appliance.align.iris_fit import R0, fit_eye

SIZE = (96, 160)  # picture height, width
CENTRE = np.array([80.0, 48.0])  # the opening's middle
HALF_WIDTH, HALF_OPEN = 20.0, 6.5  # px: corner to middle, lid to middle
RADIUS = 8.0
SKIN, WHITE, IRIS = 150.0, 215.0, 55.0


def axes(roll_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The face's (u, v) for a face rolled counter-clockwise as seen."""
    a = math.radians(roll_deg)
    return np.array([math.cos(a), -math.sin(a)]), np.array([math.sin(a), math.cos(a)])


def lid(x: np.ndarray, sign: float, half_open: float) -> np.ndarray:
    """A lid's offset along v at ``x`` along u (from the middle): 0 at the corners."""
    return sign * half_open * (1.0 - (x / HALF_WIDTH) ** 2)


def contour(roll: float = 0.0, up: float = 0.0, down: float = 0.0, half_open: float = HALF_OPEN):
    """The mesh's 16-point loop (a corner, upper lid, the other corner, lower lid), its
    upper lid moved ``up`` px up the face and the lower one ``down`` px down."""
    u, v = axes(roll)
    xs_up = np.linspace(-HALF_WIDTH, HALF_WIDTH, 9)  # points 1..9
    xs_low = np.linspace(HALF_WIDTH, -HALF_WIDTH, 9)[1:]  # 10..15, then 0 and back to 1
    upper = [(x, lid(np.array(x), -1.0, half_open) - up) for x in xs_up]
    lower = [(x, lid(np.array(x), 1.0, half_open) + down) for x in xs_low]
    loop = [lower[-1], *upper, *lower[:-1]]
    return np.array([CENTRE + float(x) * u + float(y) * v for x, y in loop])


def eye(
    iris_at: np.ndarray,
    roll: float = 0.0,
    iris: float = IRIS,
    white: float = WHITE,
    half_open: float = HALF_OPEN,
    radius: float = RADIUS,
) -> np.ndarray:
    """A grey picture of the eye (BGR), 4x supersampled then blurred."""
    ss = 4
    ys, xs = np.mgrid[0 : SIZE[0] * ss, 0 : SIZE[1] * ss]
    px, py = (xs + 0.5) / ss - 0.5, (ys + 0.5) / ss - 0.5
    u, v = axes(roll)
    du, dv = (
        (px - CENTRE[0]) * u[0] + (py - CENTRE[1]) * u[1],
        (px - CENTRE[0]) * v[0] + (py - CENTRE[1]) * v[1],
    )
    opening = (
        (np.abs(du) < HALF_WIDTH) & (dv > lid(du, -1.0, half_open)) & (dv < lid(du, 1.0, half_open))
    )
    disc = np.hypot(px - iris_at[0], py - iris_at[1]) < radius
    grey = np.where(opening, np.where(disc, iris, white), SKIN)
    grey = grey.reshape(SIZE[0], ss, SIZE[1], ss).mean(axis=(1, 3))
    grey = cv2.GaussianBlur(grey, (0, 0), 0.7)
    return cv2.cvtColor(np.clip(grey + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("roll", [0.0, 15.0])
@pytest.mark.parametrize(
    "offset", [(0.0, 0.0), (3.0, 0.0), (-4.5, 1.0), (0.0, 2.5), (0.0, -2.5), (2.0, 2.0)]
)
def test_the_iris_is_found_under_the_lids(roll: float, offset: tuple[float, float]) -> None:
    """Both lids hide part of the iris; the network's guess is 2-3 px off."""
    u, v = axes(roll)
    true = CENTRE + offset[0] * u + offset[1] * v
    guess = true + 2.4 * u - 1.8 * v
    fit = fit_eye(eye(true, roll), contour(roll), guess, RADIUS * 0.95, u, v)
    assert fit is not None and fit.weight == 1.0
    assert np.linalg.norm(fit.iris - true) < 0.3, fit.iris - true


def test_the_fit_is_the_same_at_any_eye_size() -> None:
    """Eyes are resampled to one iris size: a half-size eye is fitted as well (in its px)."""
    u, v = axes(0.0)
    true = CENTRE + np.array([1.7, 1.3])
    small = cv2.resize(eye(true), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    half = 0.5 * (true + 0.5) - 0.5
    loop = 0.5 * (contour() + 0.5) - 0.5
    fit = fit_eye(small, loop, half + np.array([1.0, -0.8]), RADIUS / 2, u, v)
    assert fit is not None and fit.weight > 0.9
    assert np.linalg.norm(fit.iris - half) < 0.25


def test_lids_are_found_where_the_picture_has_them() -> None:
    """The mesh's upper lid 2 px above the margin, its lower lid 1 px below."""
    u, v = axes(10.0)
    true = CENTRE + 1.0 * v
    fit = fit_eye(eye(true, 10.0), contour(10.0, up=2.0, down=1.0), true, RADIUS, u, v)
    assert fit is not None and fit.lids_found == (True, True)
    assert fit.lids == pytest.approx((2.0, -1.0), abs=0.35)
    assert fit.lid_shift == pytest.approx(0.5, abs=0.25)


@pytest.mark.parametrize(
    "picture",
    [
        {"iris": 200.0, "white": 212.0},  # low contrast
        {"half_open": 1.5},  # nearly closed
        {"iris": 255.0, "white": 255.0},  # saturated
    ],
)
def test_weak_fits_fall_back_to_the_network(picture: dict[str, float]) -> None:
    u, v = axes(0.0)
    half_open = picture.get("half_open", HALF_OPEN)
    image = eye(CENTRE, **picture)
    guess = CENTRE + np.array([2.0, 0.0])
    fit = fit_eye(image, contour(half_open=half_open), guess, RADIUS, u, v)
    assert fit is not None and fit.weight == 0.0


def test_tiny_or_cut_eyes_are_not_fitted() -> None:
    u, v = axes(0.0)
    image = eye(CENTRE)
    assert fit_eye(image, contour(), CENTRE, R0 / 3.0, u, v) is None  # a 2.7 px iris
    assert (
        fit_eye(image[:, 70:], contour() - (70.0, 0.0), CENTRE - (70.0, 0.0), RADIUS, u, v) is None
    )
    assert fit_eye(image, contour(), CENTRE, 0.0, u, v) is None
