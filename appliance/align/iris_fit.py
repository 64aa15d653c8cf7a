"""The iris centre and the eyelid margins measured in the picture, from the tracker's guess.

The face-mesh and iris networks under-read gaze: on the synthetic source the iris network
sees about 60% of a vertical iris movement and the mesh's lid and corner points follow the
iris by about a quarter of it (the whole upper face of the mesh shifts, as if the head had
pitched). So both the iris and the lids are measured again here, in the picture, starting
from the landmarks.

Crop. Each eye is resampled into a crop aligned with the face (x along the eye line, y
down the face) and scaled so that the tracked iris radius is ``R0`` px: the kernels are
fixed and every size of eye is searched alike.

Iris. The limbus is the strongest circular dark-inside edge: the score of a centre is the
mean, over a ring, of the image gradient along the ring's outward normal, counted only
inside the eyelid contour (a pixel in from it: the lid margin is an edge too), so an iris
half under a lid is scored on its visible arcs. Rings of 0.9 to 1.1 times the tracked
radius are tried (a ring too small or too large sits off-centre when one arc dominates,
as when a lid hides the other). The best centre within ``SEARCH`` iris radii of the
network's guess, refined to sub-pixel by parabolas, replaces the guess with a weight that
falls to 0 when the fit is weak: little edge contrast, most of the ring hidden (eyes
nearly closed), the best centre on the search window's border or far from the guess,
many clipped pixels; an eye too small to resample is not fitted at all.

Lids. Over the white, left and right of the iris, the upper margin is where the picture
turns from dark (lashes, lid) to bright going down the face, the lower one bright to dark;
per column the strongest such edge near the mesh's lid is taken, and the median over the
columns of its distance from the mesh's lid is the lid's shift. A lid with too few such
columns, or columns that disagree, is not shifted.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import cv2
import numpy as np

R0 = 8.0  # the iris radius in the crop, px
PAD = R0 + 4.0  # crop margin around the eyelid contour, crop px
MAX_UPSCALE = 2.5  # an iris radius under R0 / MAX_UPSCALE px (3.2) is not fitted
SEARCH = 1.0  # of the iris radius: how far from the network's guess the fit may go
RING_WIDTH = 1.0  # crop px either side of the ring
ERODE = 1  # crop px of the eye opening next to the lids not scored
SUPERSAMPLE = 4  # kernel anti-aliasing
RADII = (0.9, 0.95, 1.0, 1.05, 1.1)  # ring radii tried, of the tracked iris radius
# Fit weight: full from EDGE_FULL grey levels per crop px of mean limbus gradient, 0 at
# EDGE_FROM; full with RING_FULL of the ring visible, 0 at RING_FROM.
EDGE_FROM, EDGE_FULL = 8.0, 14.0
RING_FROM, RING_FULL = 0.2, 0.3
CLIPPED_MAX = 0.3  # share of the opening at 0..2 or 253..255 grey beyond which no fit
# ... and full up to AGREE_FULL iris radii from the network's guess, 0 from AGREE_OFF: the
# network is rarely that far off on a clear eye, a lash line or a shadow can be.
AGREE_FULL, AGREE_OFF = 0.5, 0.8
TIE = 0.01  # peaks within 1% of the best score are a tie, broken by the guess
# Lids: the search reach, the least gradient (grey / crop px), the columns left out at
# either corner (share of the eye width) and beyond the iris (crop px), the columns
# needed, and the largest spread (median absolute deviation, crop px) of their shifts.
LID_REACH = 0.8 * R0
LID_MIN_GRADIENT = 4.0
LID_CORNERS = 0.15
LID_CLEAR = 1.5
LID_MIN_COLUMNS = 3
LID_MAX_SPREAD = 1.5


@dataclasses.dataclass(frozen=True)
class EyeFit:
    """One eye measured in the picture (image px)."""

    iris: np.ndarray  # (2,) the fitted iris centre, before weighting
    weight: float  # 0..1: how far the fit should replace the network's guess
    lids: tuple[float, float]  # upper, lower: margin in the picture less the mesh's lid,
    # along the face's down axis, px (0 where not found)
    lids_found: tuple[bool, bool]

    @property
    def lid_shift(self) -> float | None:
        """How far the lids' midpoint is below the mesh's, px; None unless both were found."""
        return (self.lids[0] + self.lids[1]) / 2.0 if all(self.lids_found) else None


@dataclasses.dataclass(frozen=True)
class _Crop:
    grey: np.ndarray  # float32, face-aligned, iris radius R0
    origin: np.ndarray  # (2,) image px of the crop's (0, 0)
    basis: np.ndarray  # (2, 2) rows u, v
    scale: float  # crop px per image px

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - self.origin) @ self.basis.T * self.scale

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return self.origin + np.asarray(points, np.float64) @ self.basis / self.scale


def fit_eye(
    image: np.ndarray,
    contour: np.ndarray,
    iris: np.ndarray,
    radius: float,
    u: np.ndarray,
    v: np.ndarray,
) -> EyeFit | None:
    """The iris and lids of the eye with eyelid ``contour`` (16 points, the mesh's loop:
    corner, upper lid, corner, lower lid) whose iris the network put at ``iris`` with
    ``radius``; ``u``, ``v`` the face's unit axes. None when the eye cannot be cropped."""
    if not (math.isfinite(radius) and radius > 0.0 and R0 / radius <= MAX_UPSCALE):
        return None
    crop = _crop(image, contour, radius, u, v)
    if crop is None:
        return None
    grey = crop.grey
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) * np.float32(1.0 / 8.0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) * np.float32(1.0 / 8.0)
    loop = crop.to_crop(contour)
    guess = crop.to_crop(iris)
    upper, lower = _lid_curves(loop)
    lids, found = _register_lids(gy, upper, lower, guess)
    opening = np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(opening, [np.round(loop * 16.0).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    centre, weight = _fit_iris(grey, gx, gy, opening, guess)
    return EyeFit(
        crop.to_image(centre),
        weight,
        (lids[0] / crop.scale, lids[1] / crop.scale),
        found,
    )


def _crop(
    image: np.ndarray, contour: np.ndarray, radius: float, u: np.ndarray, v: np.ndarray
) -> _Crop | None:
    scale = R0 / radius
    basis = np.stack([u, v])
    centre = contour.mean(axis=0)
    local = (contour - centre) @ basis.T * scale
    lo = np.floor(local.min(axis=0) - PAD)
    size = np.ceil(local.max(axis=0) + PAD - lo).astype(int) + 1
    origin = centre + lo @ basis / scale
    corners = np.array([[0, 0], [size[0], 0], [0, size[1]], [size[0], size[1]]], np.float64)
    reach = origin + corners @ basis / scale
    x0, y0 = (math.floor(c) - 1 for c in reach.min(axis=0))
    x1, y1 = (math.ceil(c) + 2 for c in reach.max(axis=0))
    height, width = image.shape[:2]
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return None
    roi = image[y0:y1, x0:x1]
    if roi.ndim == 3:
        roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY if roi.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    at = origin - (x0, y0)
    to_roi = np.array([[u[0], v[0], at[0] * scale], [u[1], v[1], at[1] * scale]]) / scale
    grey = cv2.warpAffine(
        roi,
        to_roi,
        (int(size[0]), int(size[1])),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return _Crop(grey.astype(np.float32), origin, basis, scale)


def _lid_curves(loop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper and lower lids of the mesh's contour, each from corner to corner."""
    upper = loop[1:10]
    lower = np.vstack([loop[9:16], loop[0:2]])
    return upper[np.argsort(upper[:, 0])], lower[np.argsort(lower[:, 0])]


def _fit_iris(
    grey: np.ndarray, gx: np.ndarray, gy: np.ndarray, opening: np.ndarray, guess: np.ndarray
) -> tuple[np.ndarray, float]:
    """The best limbus centre near ``guess`` (crop px) and its weight."""
    kernel = np.ones((2 * ERODE + 1, 2 * ERODE + 1), np.uint8)
    inside = cv2.erode(opening, kernel).astype(np.float32)
    if not inside.any():
        return guess, 0.0
    # Only centres within the search window are scored: filter just the part of the
    # crop their rings reach.
    reach = math.ceil(SEARCH * R0 + 1) + math.ceil(max(RADII) * R0 + RING_WIDTH + 1)
    x0, y0 = (max(0, math.floor(c) - reach) for c in guess)
    x1 = min(grey.shape[1], math.ceil(guess[0]) + reach + 1)
    y1 = min(grey.shape[0], math.ceil(guess[1]) + reach + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return guess, 0.0
    box = (slice(y0, y1), slice(x0, x1))
    mask, along_x, along_y = inside[box], gx[box] * inside[box], gy[box] * inside[box]
    score = np.full(mask.shape, -np.inf, np.float32)
    visible = np.zeros(mask.shape, np.float32)
    for size in RADII:
        ring, ring_x, ring_y = _ring_kernels(size)
        seen = _filter(mask, ring)
        this = (_filter(along_x, ring_x) + _filter(along_y, ring_y)) / np.maximum(seen, 1e-3)
        share = seen / float(ring.sum())
        better = (share >= RING_FROM) & (this > score)
        score = np.where(better, this, score)
        visible = np.where(better, share, visible)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    window = np.hypot(xs - guess[0], ys - guess[1]) <= SEARCH * R0
    candidates = np.where(window, score, -np.inf)
    top = float(candidates.max())
    if not math.isfinite(top):
        return guess, 0.0
    filled: np.ndarray = np.where(np.isfinite(score), score, top)
    # Of the peaks within TIE of the best, the one nearest the network's guess: two peaks
    # (the limbus and a lash line, or the iris a warp repeats under a lid) can score 0.1%
    # apart, and which one wins then flipped with the last bit of another CPU's float
    # sums (AVX-512 vs AVX2: a 3 px jump on the synthetic eye). The guess is usually
    # close (see AGREE_FULL), so it breaks the tie the same way on every machine.
    peak = filled >= cv2.dilate(filled, np.ones((3, 3), np.uint8))
    near = peak & (candidates >= top - TIE * abs(top))
    distance = np.where(near, np.hypot(xs - guess[0], ys - guess[1]), np.inf)
    iy, ix = np.unravel_index(int(np.argmin(distance)), distance.shape)
    best = float(candidates[iy, ix])
    rows, cols = filled.shape
    dx = _vertex(*filled[iy, ix - 1 : ix + 2]) if 0 < ix < cols - 1 else 0.0
    dy = _vertex(*filled[iy - 1 : iy + 2, ix]) if 0 < iy < rows - 1 else 0.0
    centre = np.array([x0 + ix + dx, y0 + iy + dy], np.float64)
    if math.hypot(x0 + ix - guess[0], y0 + iy - guess[1]) > SEARCH * R0 - 1.0:
        return centre, 0.0  # no peak inside the window: an edge pulled the fit away
    pixels = grey[opening > 0]
    clipped = float(np.mean((pixels <= 2.0) | (pixels >= 253.0))) if pixels.size else 1.0
    if clipped > CLIPPED_MAX:
        return centre, 0.0
    weight = (
        _ramp(best, EDGE_FROM, EDGE_FULL)
        * _ramp(float(visible[iy, ix]), RING_FROM, RING_FULL)
        * (1.0 - _ramp(float(np.hypot(*(centre - guess))) / R0, AGREE_FULL, AGREE_OFF))
    )
    return centre, weight


def _register_lids(
    gy: np.ndarray, upper: np.ndarray, lower: np.ndarray, iris: np.ndarray
) -> tuple[tuple[float, float], tuple[bool, bool]]:
    """(upper, lower) shifts of the mesh's lids onto the margins in the picture (crop px,
    down positive) and whether each was found."""
    x0, x1 = max(upper[0, 0], lower[0, 0]), min(upper[-1, 0], lower[-1, 0])
    span = x1 - x0
    xs = np.arange(math.ceil(x0 + LID_CORNERS * span), math.floor(x1 - LID_CORNERS * span) + 1)
    xs = xs[(np.abs(xs - iris[0]) > R0 + LID_CLEAR) & (xs >= 0) & (xs < gy.shape[1])]
    shifts, found = [0.0, 0.0], [False, False]
    for k, (curve, sign) in enumerate(((upper, 1.0), (lower, -1.0))):
        hits = _margins(sign * gy, xs, np.interp(xs, curve[:, 0], curve[:, 1]))
        if hits.size < LID_MIN_COLUMNS:
            continue
        median = float(np.median(hits))
        if float(np.median(np.abs(hits - median))) <= LID_MAX_SPREAD:
            shifts[k], found[k] = median, True
    return (shifts[0], shifts[1]), (found[0], found[1])


def _margins(gradient: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per column ``xs``, where ``gradient`` peaks within ``LID_REACH`` of ``ys``, less
    ``ys`` (sub-pixel); only clear peaks (strong, not at the reach's end)."""
    reach = math.ceil(LID_REACH)
    rows = np.floor(ys).astype(int)[:, None] + np.arange(-reach, reach + 2)[None, :]
    inside = (rows >= 0) & (rows < gradient.shape[0]) & (np.abs(rows - ys[:, None]) <= LID_REACH)
    picked = gradient[np.clip(rows, 0, gradient.shape[0] - 1), xs[:, None]]
    values = np.where(inside, picked, -np.inf)
    j = np.argmax(values, axis=1)
    n = np.arange(len(xs))
    peak = values[n, j]
    ok = (peak >= LID_MIN_GRADIENT) & (j > 0) & (j < values.shape[1] - 1)
    n, j = n[ok], j[ok]
    a, b, c = values[n, j - 1], values[n, j], values[n, j + 1]
    ok = np.isfinite(a) & np.isfinite(c)
    n, j, a, b, c = n[ok], j[ok], a[ok], b[ok], c[ok]
    curvature = a - 2.0 * b + c
    step = np.where(curvature < 0.0, 0.5 * (a - c) / np.minimum(curvature, -1e-9), 0.0)
    return rows[n, j] + np.clip(step, -1.0, 1.0) - ys[n]


@lru_cache(maxsize=8)
def _ring_kernels(size: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ring of radius ``size`` R0 (anti-aliased, ``RING_WIDTH`` either side) and the
    ring weighted by the x and y components of its outward normal."""
    radius = size * R0
    half = math.ceil(radius + RING_WIDTH + 1)
    n = 2 * half + 1
    g = (np.arange(n * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - (half + 0.5)
    xs, ys = np.meshgrid(g, g)
    r = np.maximum(np.hypot(xs, ys), 1e-9)
    w = np.clip(1.0 - np.abs(r - radius) / RING_WIDTH, 0.0, None)

    def pooled(k: np.ndarray) -> np.ndarray:
        return k.reshape(n, SUPERSAMPLE, n, SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)

    return pooled(w), pooled(w * xs / r), pooled(w * ys / r)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with ``kernel`` centred, zero outside the crop."""
    return cv2.filter2D(image, cv2.CV_32F, kernel, borderType=cv2.BORDER_CONSTANT)


def _vertex(a: float, b: float, c: float) -> float:
    """The offset of a parabola's peak through three samples a step apart, within 1."""
    curvature = a - 2.0 * b + c
    return min(1.0, max(-1.0, 0.5 * (a - c) / curvature)) if curvature < 0.0 else 0.0


def _ramp(x: float, start: float, full: float) -> float:
    s = min(1.0, max(0.0, (x - start) / (full - start))) if math.isfinite(x) else 0.0
    return s * s * (3.0 - 2.0 * s)
