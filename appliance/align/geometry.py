"""What alignment needs from a face: centre, size, box and eye-line roll, NaN-proof."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Face-mesh indices: outer eye corners (image left, image right), forehead top, chin.
EYE_LEFT, EYE_RIGHT, FOREHEAD, CHIN = 33, 263, 10, 152
LIP_UPPER, LIP_LOWER = 13, 14  # inner lip midpoints: the mouth opening
MIN_FINITE = 0.5  # a mesh with fewer finite points than this fraction is not a face


@dataclass(frozen=True)
class FaceGeom:
    """One face as framing sees it, in source pixels.

    ``height`` is the forehead-to-chin distance (not the box height, which grows with
    roll and would make the zoom breathe as the head tilts). ``roll_deg`` is the
    eye-line angle, counter-clockwise positive as seen in the image (y points down),
    or None when the eye corners are not usable. ``mouth`` is the lip gap over the
    height (None if unusable): its movement says who is talking.
    """

    id: int
    cx: float
    cy: float
    height: float
    box: tuple[float, float, float, float]
    roll_deg: float | None
    mouth: float | None = None


def measure(face: Any) -> FaceGeom | None:
    """The geometry of a ``vision.stage.Face``; None for a face too broken to use."""
    lm = np.asarray(getattr(face, "landmarks", None), dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] <= max(EYE_RIGHT, CHIN) or lm.shape[1] < 2:
        return None
    xy = lm[:, :2]
    ok = np.asarray(np.isfinite(xy).all(axis=1))
    if ok.mean() < MIN_FINITE:
        return None
    pts = xy[ok]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if not (x1 > x0 and y1 > y0):
        return None
    height = float(np.hypot(*(xy[CHIN] - xy[FOREHEAD]))) if ok[CHIN] and ok[FOREHEAD] else 0.0
    if not height > 0.0:
        height = float(y1 - y0)
    roll = None
    if ok[EYE_LEFT] and ok[EYE_RIGHT]:
        dx, dy = xy[EYE_RIGHT] - xy[EYE_LEFT]
        if dx > 0.0:  # eye corners in image order; otherwise the mesh is upside down
            roll = math.degrees(math.atan2(-dy, dx))
    mouth = None
    if ok[LIP_UPPER] and ok[LIP_LOWER]:
        mouth = float(np.hypot(*(xy[LIP_LOWER] - xy[LIP_UPPER]))) / height
    return FaceGeom(
        id=int(getattr(face, "id", -1)),
        cx=float(x0 + x1) / 2.0,
        cy=float(y0 + y1) / 2.0,
        height=height,
        box=(float(x0), float(y0), float(x1), float(y1)),
        roll_deg=roll,
        mouth=mouth,
    )
