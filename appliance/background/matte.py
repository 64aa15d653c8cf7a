"""From the model's 256x256 person probability to a frame-size alpha matte.

Four steps, each cheap because it runs on small grids:

1. **Islands** (model grid): specks the model calls person in the room, and pinholes it
   calls background inside the person, smaller than ``MIN_PART`` of the picture, are
   removed (connected components; a tenth of a millisecond at 256x256).
2. **Edges** (fast guided filter, He, Sun and Tang 2013; He and Sun 2015): the
   probability, upsampled from 256x256, is blurry and misplaced by a few pixels; a
   guided filter with the grey picture as guide snaps it to the picture's edges. Its
   coefficients are fitted on a grid half the work picture's size (box filters only)
   and applied on the work picture. A contrast curve then clears the faint residue the
   filter leaves in flat regions.
3. **Temporal stability** (work picture): exponential smoothing of the matte, weighted
   by ``stability``. Most of the flicker that reaches the matte is the picture's own
   noise carried through the filter (its ``a * guide`` term), so the smoothing runs on
   the final matte rather than on the model's output: on the synthetic source with
   sensor noise it cuts the frame-to-frame change sixfold there, against a quarter when
   smoothing the probability. The weight is per pixel and goes to "follow at once"
   where the matte changed a lot *on average over a small window*: noise changes it
   with random signs that average out, a moving outline changes a whole stretch of it
   the same way, so flicker is damped while motion leaves no ghost.
4. **Upsampling**: the uint8 work matte is resized (bilinear) to the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.background.frames import reduce

MIN_PART = 0.001  # islands and pinholes smaller than this fraction of the picture go
RADIUS = 1.0 / 90.0  # guided-filter radius, fraction of the grid height (2 px of 180)
EPS = 1e-2  # guided-filter regulariser (grey guide in [0, 1]): lower follows edges harder
CURVE = (0.2, 0.8)  # matte values mapped to 0 and 1 after the filter
FLICKER, MOTION = 0.03, 0.2  # local mean matte changes below: smoothed fully; above: followed
CHANGE_WINDOW = 5  # px of the work picture over which a change is averaged


def clean_islands(prob: np.ndarray, threshold: float = 0.5, min_part: float = MIN_PART) -> None:
    """Remove small person specks and fill small background pinholes, in place."""
    min_area = max(1.0, min_part * prob.size)
    person = (prob > threshold).astype(np.uint8)
    specks = _small_parts(person, min_area, border_ok=True)
    if specks is not None:
        # The speck's soft fringe (below the threshold) goes with it.
        fringe = cv2.dilate(specks.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        prob[fringe & ((prob <= threshold) | specks)] = 0.0
    holes = _small_parts(1 - person, min_area, border_ok=False)
    if holes is not None:
        prob[holes] = 1.0


def _small_parts(mask: np.ndarray, min_area: float, border_ok: bool) -> np.ndarray | None:
    """Pixels of the 8-connected parts of ``mask`` smaller than ``min_area``, or None.

    ``border_ok=False`` spares parts that touch the picture's border: background seen
    past the frame edge is no pinhole. (Plain labelling plus a bincount: OpenCV's
    labelling with statistics is several times slower at this size.)
    """
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    if count <= 2:  # the usual case: one person (or none), nothing to clean
        return None
    small = np.bincount(labels.ravel(), minlength=count) < min_area
    small[0] = False  # label 0 is the other class
    if not border_ok:
        edge = np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))
        small[edge] = False
    if not small.any():
        return None
    return small[labels]


def grey(image: np.ndarray) -> np.ndarray:
    """float32 grey in [0, 1]: the guide."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)


def guided_coefficients(
    guide: np.ndarray, src: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Box-averaged (a, b) of the guided filter: ``output = a * guide + b``."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return box(a), box(b)


class Matte:
    """The matte of successive frames; holds the smoothed probability between them."""

    def __init__(self, eps: float = EPS, radius: float = RADIUS) -> None:
        self.eps = eps
        self.radius = radius
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the past frames (new source, new size, after a pause)."""
        self._prev = None

    def smooth(self, matte: np.ndarray, stability: float) -> np.ndarray:
        """Temporal smoothing of a float matte; see the module docstring."""
        prev = self._prev
        if prev is None or prev.shape != matte.shape or stability <= 0.0:
            self._prev = matte
            return matte
        change = cv2.subtract(matte, prev)
        local = np.abs(cv2.blur(change, (CHANGE_WINDOW, CHANGE_WINDOW)))
        # Per pixel weight of the new frame: 1 - stability where the local change is
        # flicker, 1 where it is motion, linear in between. OpenCV calls: the same in
        # NumPy takes three times as long at 640x360.
        k = stability / (MOTION - FLICKER)
        weight = cv2.addWeighted(local, k, local, 0.0, 1.0 - stability - k * FLICKER)
        weight = np.clip(weight, np.float32(1.0 - stability), np.float32(1.0))
        out = cv2.add(prev, cv2.multiply(change, weight))
        self._prev = out
        return out

    def update(
        self, prob: np.ndarray, work: np.ndarray, stability: float, threshold: float = 0.5
    ) -> np.ndarray:
        """uint8 matte (255 = person) at the work picture's size from the model's output.

        ``prob`` is modified (islands cleaned, parts told apart at the model's
        ``threshold``); ``work`` is the reduced BGR frame.
        """
        clean_islands(prob, threshold)
        guide = grey(work)
        h, w = guide.shape
        factor = 2 if h >= 120 else 1  # very small frames: the grid is the work picture
        coarse = reduce(guide, factor)
        ch, cw = coarse.shape
        src = cv2.resize(prob, (cw, ch), interpolation=cv2.INTER_LINEAR)
        radius = max(1, round(ch * self.radius))
        a, b = guided_coefficients(coarse, src, radius, self.eps)
        if factor > 1:
            a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
            b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
        lo, hi = CURVE
        gain = np.float32(1.0 / (hi - lo))
        matte = np.clip((a * guide + b - np.float32(lo)) * gain, 0.0, 1.0)
        matte = self.smooth(matte, stability)
        return cv2.convertScaleAbs(matte, alpha=255.0)  # rounds; the matte is >= 0


def upsample(matte: np.ndarray, width: int, height: int) -> np.ndarray:
    """The work matte at the frame's size (bilinear: the matte is smooth)."""
    if matte.shape[:2] == (height, width):
        return matte
    return cv2.resize(matte, (width, height), interpolation=cv2.INTER_LINEAR)
