"""Auto-framing: a virtual pan/tilt/zoom crop that keeps the face (or group) composed.

The state is the crop centre and height (width = height x aspect); each is a critically
damped spring toward a target. The target moves only when the wanted composition leaves
a dead band around it, so a still head gives a still crop (landmark noise never reaches
the springs). Everything is in seconds from ``t_capture``, never in frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.align.geometry import FaceGeom
from appliance.align.settings import AlignSettings
from appliance.align.spring import CriticalSpring, advance, omega_for_settle

MAX_DT = 0.5  # s; a longer gap (paused source) is treated as this, not as a huge leap
PAN_MAX_SPEED = 1.5  # frame heights per second: bounds the pan velocity on wild jumps
ZOOM_MAX_SPEED = 0.6  # frame heights per second of crop-height change
GROUP_MIN_SIZE = 0.5  # faces smaller than this x the largest are background, not group
SWITCH_MARGIN = 1.15  # another face must be this much larger to take the lock
MAX_FACE_FRAC = 0.4  # the tightest framing: face height 2/5 of the crop
ACTIVITY_TAU = 1.0  # s; how long a face counts as "recently active" after talking
ACTIVE_MIN = 0.05  # lip-gap change per second (face heights) that counts as talking
GROUP_PAD_X, GROUP_PAD_Y = 1.4, 1.6  # crop around a group's union box


@dataclass(frozen=True)
class Crop:
    """A crop rectangle by centre and size, source pixels."""

    cx: float
    cy: float
    w: float
    h: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (
            self.cx - self.w / 2,
            self.cy - self.h / 2,
            self.cx + self.w / 2,
            self.cy + self.h / 2,
        )


def largest_crop_height(width: int, height: int, aspect: float) -> float:
    """The height of the largest crop of ``aspect`` (w / h) that fits the sensor."""
    return min(float(height), width / aspect)


def clamp_crop(cx: float, cy: float, h: float, size: tuple[int, int], aspect: float) -> Crop:
    """The crop moved (not resized) to lie inside the sensor; h must already fit."""
    width, height = size
    w = h * aspect
    cx = min(max(cx, w / 2), width - w / 2)
    cy = min(max(cy, h / 2), height - h / 2)
    return Crop(cx, cy, w, h)


class Framer:
    """Turns the faces of each frame into a smoothly moving crop."""

    def __init__(self, settings: AlignSettings, size: tuple[int, int], aspect: float) -> None:
        self.size, self.aspect = size, aspect
        self.h_max = largest_crop_height(size[0], size[1], aspect)
        self.settings = settings
        full = self.full()
        speed = PAN_MAX_SPEED * size[1]
        self.x = CriticalSpring(settings.pan_speed, full.cx, speed)
        self.y = CriticalSpring(settings.pan_speed, full.cy, speed)
        self.h = CriticalSpring(settings.zoom_speed, full.h, ZOOM_MAX_SPEED * size[1])
        self.target = full
        self.t_last: float | None = None
        self.last_seen = -math.inf
        self.locked: int | None = None
        self.challenger: tuple[int, float] | None = None  # (id, since)
        self.first_seen: dict[int, float] = {}
        self.activity: dict[int, tuple[float, float, float]] = {}  # id: (t, mouth, rate)
        self.current: list[FaceGeom] = []  # the faces framed on the last update

    def full(self) -> Crop:
        return clamp_crop(self.size[0] / 2, self.size[1] / 2, self.h_max, self.size, self.aspect)

    @property
    def crop(self) -> Crop:
        return clamp_crop(self.x.value, self.y.value, self.h.value, self.size, self.aspect)

    def configure(self, settings: AlignSettings) -> None:
        self.settings = settings
        self._speeds(settings.pan_speed, settings.zoom_speed)

    def _speeds(self, pan: float, zoom: float) -> None:
        self.x.omega = self.y.omega = pan
        self.h.omega = zoom

    def update(self, faces: Sequence[FaceGeom], t: float) -> Crop:
        """Advance to time ``t`` with this frame's (valid) faces; the crop to show."""
        s = self.settings
        dt, self.t_last = advance(self.t_last, t, MAX_DT)
        # Move over the past interval toward the target set by the previous frame, then
        # take this frame's faces: a measurement acts from its own time on, so the motion
        # is the same at any frame rate.
        h = self.h.step(self.target.h, dt)
        self.h.value = min(max(h, self.h_max / max(s.max_zoom, 1.0)), self.h_max)
        self.x.step(self.target.cx, dt)
        self.y.step(self.target.cy, dt)
        subject = self.current = self.subject(faces, t)
        self._speeds(s.pan_speed, s.zoom_speed)
        if subject:
            self.last_seen = t
            self.retarget(self.compose(subject))
        elif t - self.last_seen > s.lost_hold_s:
            # Lost for a while: widen slowly to the full frame (one speed for all axes,
            # so the crop opens up evenly instead of panning first).
            self.target = self.full()
            widen = omega_for_settle(s.widen_s)
            self._speeds(widen, widen)
        # else: hold the last target; a face often comes back within a blink or a turn.
        crop = self.crop
        for axis, value in ((self.x, crop.cx), (self.y, crop.cy)):
            if axis.value != value:  # pushed against the sensor edge: stop there
                axis.value, axis.velocity = value, 0.0
        return crop

    def subject(self, faces: Sequence[FaceGeom], t: float) -> list[FaceGeom]:
        """The faces to frame: the locked one, plus the group that has been in view."""
        if not faces:
            self.first_seen.clear()
            return []
        ids = {f.id for f in faces}
        self.first_seen = {i: v for i, v in self.first_seen.items() if i in ids}
        self.activity = {i: v for i, v in self.activity.items() if i in ids}
        for f in faces:
            self.first_seen.setdefault(f.id, t)
            self.track_activity(f, t)
        primary = self.lock(faces, t)
        if not self.settings.group:
            return [primary]
        # A face joins the group only after dwell_s in view, so a face that flickers
        # through (a false detection, a passer-by) does not make the crop pump.
        return [primary] + [
            f
            for f in faces
            if f.id != primary.id
            and f.height >= GROUP_MIN_SIZE * primary.height
            and t - self.first_seen[f.id] >= self.settings.dwell_s
        ]

    def track_activity(self, face: FaceGeom, t: float) -> None:
        """Smoothed speed of the lip gap: how much this face has been talking lately."""
        if face.mouth is None:
            return
        last = self.activity.get(face.id)
        if last is None or t <= last[0]:
            self.activity[face.id] = (t, face.mouth, 0.0 if last is None else last[2])
            return
        t0, mouth0, rate = last
        alpha = 1.0 - math.exp(-(t - t0) / ACTIVITY_TAU)
        speed = abs(face.mouth - mouth0) / (t - t0)
        self.activity[face.id] = (t, face.mouth, rate + alpha * (speed - rate))

    def score(self, face: FaceGeom) -> float:
        """How much a face deserves the lead: its size, or how much it has talked."""
        if self.settings.lock == "active":
            rate = self.activity.get(face.id, (0.0, 0.0, 0.0))[2]
            # Silent faces tie at zero activity; size breaks the tie.
            return max(rate - ACTIVE_MIN, 0.0) + 1e-6 * face.height
        return face.height

    def lock(self, faces: Sequence[FaceGeom], t: float) -> FaceGeom:
        """The primary face: kept until another clearly scores higher for ``dwell_s``."""
        best = max(faces, key=self.score)
        current = next((f for f in faces if f.id == self.locked), None)
        if current is None:
            self.locked, self.challenger = best.id, None
            return best
        if best.id != current.id and self.score(best) > SWITCH_MARGIN * self.score(current):
            if self.challenger is None or self.challenger[0] != best.id:
                self.challenger = (best.id, t)
            elif t - self.challenger[1] >= self.settings.dwell_s:
                self.locked, self.challenger = best.id, None
                return best
        else:
            self.challenger = None
        return current

    def compose(self, faces: Sequence[FaceGeom]) -> Crop:
        """The crop that puts the subject where the composition wants it."""
        s = self.settings
        face_h = max(f.height for f in faces)
        h = face_h / max(s.face_height, 0.05)
        x0 = min(f.box[0] for f in faces)
        y0 = min(f.box[1] for f in faces)
        x1 = max(f.box[2] for f in faces)
        y1 = max(f.box[3] for f in faces)
        if len(faces) > 1:  # the whole group, with room around it
            h = max(h, GROUP_PAD_Y * (y1 - y0), GROUP_PAD_X * (x1 - x0) / self.aspect)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        else:
            cx, cy = faces[0].cx, faces[0].cy
            # Near a sensor edge the composition cannot be had at this size: zoom in, as
            # far as a face of MAX_FACE_FRAC of the crop, rather than give up headroom.
            width, height = self.size
            row = min(max(s.face_row, 0.05), 0.95)
            fits = min(cy / row, (height - cy) / (1 - row), 2 * min(cx, width - cx) / self.aspect)
            h = max(min(h, fits), face_h / MAX_FACE_FRAC)
        h = min(max(h, self.h_max / max(s.max_zoom, 1.0)), self.h_max)
        # The face centre sits face_row from the top: the crop centre is below it.
        return clamp_crop(cx, cy + h * (0.5 - s.face_row), h, self.size, self.aspect)

    def retarget(self, wanted: Crop) -> None:
        """Move the target only when the wanted crop leaves the dead band around it."""
        s, cur = self.settings, self.target
        cx, cy, h = cur.cx, cur.cy, cur.h
        if abs(wanted.h / cur.h - 1.0) > s.zoom_dead_band:
            h = wanted.h
        if abs(wanted.cx - cur.cx) > s.dead_band * cur.w or abs(wanted.cy - cur.cy) > (
            s.dead_band * cur.h
        ):
            cx, cy = wanted.cx, wanted.cy
        elif h != cur.h:
            cx, cy = wanted.cx, wanted.cy  # re-zooming: re-centre with it
        self.target = clamp_crop(cx, cy, h, self.size, self.aspect)
