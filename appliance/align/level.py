"""Levelling: turn the picture so the eyes are level, and the one warp that does it all.

The roll comes from the eye line (mesh points 33/263), which is what a viewer sees as
tilt; the head-pose roll would add the pose solver's noise for nothing. Beyond
``max_roll_deg`` the tilt is taken as deliberate (a head laid sideways) and left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from appliance.align.framing import MAX_DT, Crop
from appliance.align.geometry import FaceGeom
from appliance.align.settings import AlignSettings
from appliance.align.spring import CriticalSpring, advance, omega_for_settle

ROLL_MAX_SPEED = 60.0  # deg/s: a bad eye line can never spin the picture
KEEP_CENTRE = 0.85  # levelling may zoom in this much more to keep the composition


class Leveller:
    """The smoothed roll correction (degrees, the face's eye-line angle to undo)."""

    def __init__(self, settings: AlignSettings) -> None:
        self.settings = settings
        self.spring = CriticalSpring(settings.roll_speed, 0.0, ROLL_MAX_SPEED)
        self.target = 0.0
        self.t_last: float | None = None
        self.last_seen = -math.inf

    def configure(self, settings: AlignSettings) -> None:
        self.settings = settings
        self.spring.omega = settings.roll_speed

    @property
    def roll_deg(self) -> float:
        return self.spring.value

    def update(self, faces: Sequence[FaceGeom], t: float) -> float:
        """Advance to ``t`` with the framed faces (primary first); the roll to undo."""
        s = self.settings
        dt, self.t_last = advance(self.t_last, t, MAX_DT)
        # As in framing: move first, then let this frame's measurement set the target.
        self.spring.step(self.target, dt)
        self.spring.omega = s.roll_speed
        rolls = [f.roll_deg for f in faces if f.roll_deg is not None]
        if rolls:
            self.last_seen = t
            # A group is levelled by its median tilt: one odd head does not turn the room.
            measured = float(np.median(rolls))
            wanted = measured if abs(measured) <= s.max_roll_deg else 0.0
            if abs(wanted - self.target) > s.roll_dead_band_deg or wanted == 0.0:
                self.target = wanted
        elif t - self.last_seen > s.lost_hold_s:
            self.target, self.spring.omega = 0.0, omega_for_settle(s.widen_s)
        return self.spring.value


def fit_rotated(crop: Crop, roll_deg: float, size: tuple[int, int]) -> Crop:
    """The crop, shrunk about its centre and then moved, so that turned by ``roll_deg``
    all four corners lie on the sensor (no invented border pixels in the output).

    A turned 16:9 crop needs much more height than it had; moving it to make room would
    undo the composition, so it first zooms in (up to ``1 / KEEP_CENTRE``) to stay put.
    """
    width, height = size
    c, s = abs(math.cos(math.radians(roll_deg))), abs(math.sin(math.radians(roll_deg)))
    ex = (crop.w * c + crop.h * s) / 2  # half extents of the turned crop's bounding box
    ey = (crop.w * s + crop.h * c) / 2
    k_fit = min(1.0, (width / 2) / ex, (height / 2) / ey)  # the most it can stay
    room = min(crop.cx, width - crop.cx) / ex, min(crop.cy, height - crop.cy) / ey
    k = max(min(k_fit, *room), KEEP_CENTRE * k_fit)
    ex, ey = ex * k, ey * k
    cx = min(max(crop.cx, ex), width - ex)
    cy = min(max(crop.cy, ey), height - ey)
    return Crop(cx, cy, crop.w * k, crop.h * k)


def output_to_source(crop: Crop, roll_deg: float, out_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine from output pixel to source pixel (OpenCV's pixel-centre convention).

    The output's x axis runs along the eye line: a face rolled by +r (counter-clockwise
    in the image) comes out level.
    """
    wo, ho = out_size
    scale = crop.w / wo
    r = math.radians(roll_deg)
    c, s = math.cos(r) * scale, math.sin(r) * scale
    a = np.array([[c, s], [-s, c]])
    # Continuous coordinates (pixel i spans i..i+1) map centre to centre; the +-0.5
    # turns them into OpenCV's (pixel i is at i).
    offset = np.array([crop.cx, crop.cy]) - a @ np.array([wo / 2, ho / 2]) + a @ [0.5, 0.5] - 0.5
    return np.hstack([a, offset[:, None]])
