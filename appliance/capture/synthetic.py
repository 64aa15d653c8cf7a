"""A synthetic camera: a moving, talking, blinking face with ground truth.

The eyes look at the lens, or away from it by a chosen angle (``gaze_deg``), for testing
eye contact.

The face is scikit-image's astronaut portrait (``skimage/data/astronaut.png``, public
domain, NASA), cut out along a hand-checked outline and composited on a room-like
background. Every motion is a deterministic function of the frame index and the seed,
so a test can render frame ``n`` again and get the same pixels and the same truth.

Rendering stays cheap (a few ms at 1280x720 on one core): the background is drawn once,
the mouth and eye warps touch only small patches of a pre-scaled sprite, and one
``warpAffine`` maps the sprite into the bounding box it covers in the frame, where the
only per-pixel blend happens.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.capture.base import Pacer, Source, SourceError
from appliance.frame import Frame

# --- The photo and its landmarks -----------------------------------------------------------
#
# All coordinates are pixels (x, y) of the 512x512 astronaut photo. They were measured by
# hand on 6x-12x nearest-neighbour zooms of the face with a 5/10 px grid drawn over them;
# the pupils were then refined as the intensity-weighted centroid of the darkest blob of
# the Gaussian-blurred grey image in each eye. skimage's LBP frontal-face cascade finds the
# face at x 175..268, y 70..163, consistent with these.

LEFT_EYE = (203.0, 99.5)  # image-left eye (the subject's right), pupil centre
RIGHT_EYE = (246.8, 101.8)  # image-right eye, pupil centre
NOSE_TIP = (224.5, 127.0)
MOUTH_LEFT = (203.8, 140.5)  # image-left mouth corner
MOUTH_RIGHT = (242.9, 141.7)
UPPER_LIP = (222.0, 141.0)  # middle of the upper lip (its top edge is at y 138.3)
LOWER_LIP = (222.0, 151.5)  # middle of the lower lip
TEETH_EDGE = (222.5, 148.8)  # lower edge of the upper teeth: where the mouth opens
CHIN = (222.0, 177.5)
FACE_BOX = (180.0, 72.0, 268.0, 180.0)  # cheek to cheek, upper forehead to chin

# Eye lids per eye: (x of the outer-left corner, x of the right corner, y of the upper lid
# margin above the pupil, y of the lower lid margin below it), read off the grey profiles.
_LEFT_LIDS = (192.0, 213.0, 96.5, 104.5)
_RIGHT_LIDS = (237.0, 258.0, 99.0, 106.5)

# The portrait's own head tilt: the right eye sits 2.3 px lower over 43.8 px. The sprite is
# levelled by this much so that the roll in the truth is the true eye-line angle.
_LEVEL_DEG = math.degrees(math.atan2(RIGHT_EYE[1] - LEFT_EYE[1], RIGHT_EYE[0] - LEFT_EYE[0]))

# Person outline (hair, face, neck ring, suit; the helmet and flag left out), traced from a
# GrabCut segmentation seeded with a hand-drawn polygon, simplified and corrected by hand
# where GrabCut kept backdrop between the neck and the suit's neck ring.
_OUTLINE = (
    (248, 18), (237, 16), (227, 16), (212, 21), (190, 32), (170, 44), (156, 58),
    (153, 68), (155, 98), (157, 104), (170, 116), (170, 121), (174, 128), (182, 132),
    (183, 146), (161, 149), (140, 158), (131, 167), (127, 175), (124, 206), (113, 205),
    (91, 226), (76, 235), (62, 250), (44, 282), (39, 305), (26, 342), (26, 366), (19, 390),
    (19, 418), (24, 432), (23, 460), (26, 484), (22, 511), (280, 511), (276, 495),
    (276, 460), (282, 433), (293, 409), (296, 393), (330, 361), (362, 346), (359, 336),
    (357, 324), (356, 302), (352, 287), (346, 275), (340, 262), (319, 243), (303, 233),
    (300, 222), (290, 200), (280, 190), (266, 181), (258, 176), (256, 170), (258, 160),
    (262, 150), (266, 137), (275, 134), (294, 111), (300, 92), (300, 81), (296, 58),
    (286, 40), (276, 31),
)  # fmt: skip

# --- Look and motion -----------------------------------------------------------------------

_FACE_FRAC = 0.30  # face-box height / frame height at scale 1 (1280x720: 216 px)
_REST = (0.5, 0.45)  # resting face centre, as fractions of the frame (eyes a bit above middle)
_MAX_GAP = 10.0  # mouth gap at mouth_open=1, photo px (the lips are ~40 px wide)
_PERIOD = 64.0  # s; speech and blink schedules repeat after this
_STEP_EVERY = 9.0  # s; the person shifts seat this often ...
_STEP_TAKES = 0.8  # s; ... and the shift takes this long
_BLINK = (0.045, 0.025, 0.080)  # s: lid closing, closed, opening (150 ms in all)
_INTERIOR_TOP = np.array((14, 10, 18), np.float32)  # BGR mouth interior under the teeth
_INTERIOR_LOW = np.array((36, 40, 104), np.float32)  # ... and toward the tongue
# Gaze: the photo's own gaze is taken as "at the lens". An eye turning by an angle moves its
# iris by the eyeball's radius times the sine (12 mm from the centre of rotation to the
# iris), scaled to the photo by the inter-pupil distance (63 mm, an adult's average).
_EYEBALL_MM, _IPD_MM = 12.0, 63.0
# The iris discs (centre x, y): the limbus circles fitted to the photo's grey levels sit
# 0.7-0.9 px below the pupils' dark centroids (the upper lid hides the top of the iris).
_LEFT_IRIS = (203.2, 100.2)
_RIGHT_IRIS = (246.3, 102.6)
_IRIS_R = 3.9  # photo px: the iris with its dark limbal ring
_WHITE_R = 4.6  # photo px: the white is redrawn out to here, so no old limbus shows
_MAX_GAZE_DEG = 30.0  # beyond this the iris would leave the eye opening


def _photo_path() -> Path:
    """``skimage/data/astronaut.png`` without importing scikit-image (slow, unneeded)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "synthetic source needs scikit-image for its face photo: pip install scikit-image"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"


def _hash01(*keys: int) -> float:
    """Uniform [0, 1) from integers (splitmix64): same on every machine and Python build."""
    z = 0x9E3779B97F4A7C15
    for key in keys:
        z = (z + (key & 0xFFFFFFFFFFFFFFFF) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _apply(m: np.ndarray, x: float, y: float) -> tuple[float, float]:
    return (
        float(m[0, 0] * x + m[0, 1] * y + m[0, 2]),
        float(m[1, 0] * x + m[1, 1] * y + m[1, 2]),
    )


SPEECH_PERIOD_S = _PERIOD  # the synthetic person's speech repeats after this many seconds


def speech_schedule(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start s, duration s, depth 0..1) of each syllable in one ``SPEECH_PERIOD_S`` cycle
    of scene time: the one schedule both the synthetic face (its mouth opens at each
    start, ``mouth_open`` = depth * sin(pi * s / duration)) and the synthetic microphone
    (``appliance.audio.sources.SyntheticAudioSource``: a voiced burst with a click at
    each start) follow, so lip sync can be measured from either side."""
    motion = _Motion(64, 48, 30.0, seed % (1 << 64))  # speech depends on the seed alone
    return motion.syl_start.copy(), motion.syl_dur.copy(), motion.syl_amp.copy()


@dataclass(frozen=True)
class Pose:
    """What frame ``index`` shows; all of it follows from the index, the fps and the seed."""

    index: int
    t: float  # scene time, s
    cx: float  # face centre in the frame, px
    cy: float
    roll_deg: float  # counter-clockwise as seen in the image
    scale: float  # leaning in (>1) or out (<1) around the nominal face size
    mouth_open: float  # 0 closed (as in the photo, teeth together) .. 1 wide open
    eyes_open: float  # 1 open .. 0 closed


class _Motion:
    """Smooth head motion plus irregular speech and blinks, as functions of time."""

    def __init__(self, width: int, height: int, fps: float, seed: int) -> None:
        self.width, self.height, self.fps, self.seed = width, height, fps, seed
        rng = np.random.default_rng([seed, 0x5E1F])
        self.phase = rng.uniform(0.0, 2.0 * math.pi, size=16)
        # Speech: phrases of 1.5-4 s with 0.4-1.6 s pauses; syllables of 0.12-0.32 s, each
        # opening the mouth to its own depth, so the rhythm is irregular like real speech.
        starts, durs, amps = [], [], []
        t = 0.3
        while t < _PERIOD - 1.0:
            end = min(t + rng.uniform(1.5, 4.0), _PERIOD - 1.0)
            while t < end:
                dur = rng.uniform(0.12, 0.32)
                starts.append(t)
                durs.append(dur)
                amps.append(rng.uniform(0.3, 1.0))
                t += dur + (rng.uniform(0.0, 0.08) if rng.random() < 0.3 else 0.0)
            t += rng.uniform(0.4, 1.6)
        self.syl_start = np.array(starts)
        self.syl_dur = np.array(durs)
        self.syl_amp = np.array(amps)
        # Blinks every 2-6 s.
        blinks, t = [], rng.uniform(0.5, 2.5)
        while t < _PERIOD - 1.0:
            blinks.append(t)
            t += rng.uniform(2.0, 6.0)
        self.blink_start = np.array(blinks)

    def _wave(self, t: float, terms: tuple[tuple[float, float], ...], k: int) -> float:
        """Sum of sinusoids (amplitude, period s) with incommensurate periods."""
        return sum(
            a * math.sin(2.0 * math.pi * t / p + self.phase[k + i])
            for i, (a, p) in enumerate(terms)
        )

    def _step(self, t: float, axis: int) -> float:
        """Occasional seat shifts: a smoothstep to a new random offset every few seconds."""
        k = math.floor(t / _STEP_EVERY)
        before = 2.0 * _hash01(self.seed, k - 1, axis) - 1.0
        after = 2.0 * _hash01(self.seed, k, axis) - 1.0
        w = _smoothstep((t - k * _STEP_EVERY) / _STEP_TAKES)
        return before + (after - before) * w

    def mouth(self, t: float) -> float:
        t %= _PERIOD
        i = int(np.searchsorted(self.syl_start, t, side="right")) - 1
        if i < 0:
            return 0.0
        s = (t - self.syl_start[i]) / self.syl_dur[i]
        return float(self.syl_amp[i] * math.sin(math.pi * s)) if s < 1.0 else 0.0

    def eyes(self, t: float) -> float:
        t %= _PERIOD
        i = int(np.searchsorted(self.blink_start, t, side="right")) - 1
        if i < 0:
            return 1.0
        s = t - float(self.blink_start[i])
        close, hold, reopen = _BLINK
        if s < close:
            return 1.0 - _smoothstep(s / close)
        if s < close + hold:
            return 0.0
        if s < close + hold + reopen:
            return _smoothstep((s - close - hold) / reopen)
        return 1.0

    def pose(self, index: int) -> Pose:
        t = index / self.fps
        # Offsets as fractions of the frame: within +-0.2 of the width, +-0.1 of the height.
        dx = 0.08 * self._step(t, 0) + self._wave(t, ((0.08, 11.3), (0.03, 4.7), (0.01, 1.9)), 0)
        dy = 0.04 * self._step(t, 1) + self._wave(t, ((0.04, 8.9), (0.015, 3.7), (0.005, 1.3)), 3)
        roll = self._wave(t, ((7.0, 7.3), (3.5, 2.9), (1.3, 1.1)), 6)
        scale = 1.0 + self._wave(t, ((0.065, 13.1), (0.025, 4.3), (0.01, 1.7)), 9)
        return Pose(
            index=index,
            t=t,
            cx=(_REST[0] + dx) * self.width,
            cy=(_REST[1] + dy) * self.height,
            roll_deg=roll,
            scale=scale,
            mouth_open=self.mouth(t),
            eyes_open=self.eyes(t),
        )


class _MouthWarp:
    """Drops the jaw: everything under the upper teeth slides down, the gap turns dark.

    Geometry lives in sprite pixels. The displacement is largest at the lower lip, fades
    toward the chin and neck, and reaches sideways to the mouth corners at the lips (so the
    gap closes there) but wider toward the jaw (so the skin under the corners does not shear).
    """

    def __init__(self, to_sprite: np.ndarray, s0: float, sprite_shape: tuple[int, int]) -> None:
        (self.lx, self.ly), (self.rx, self.ry) = (
            _apply(to_sprite, *MOUTH_LEFT),
            _apply(to_sprite, *MOUTH_RIGHT),
        )
        tx, ty = _apply(to_sprite, *TEETH_EDGE)
        self.xm, self.hw = (self.lx + self.rx) / 2.0, (self.rx - self.lx) / 2.0
        self.depth = ty - self._corner_line(tx)
        self.lip_h, self.fade = 6.0 * s0, 45.0 * s0
        self.max_gap = _MAX_GAP * s0
        h, w = sprite_shape
        x0, x1 = max(0, int(self.xm - 2.0 * self.hw)), min(w, int(self.xm + 2.0 * self.hw) + 2)
        y0 = max(0, int(min(self.ly, self.ry) - 2.0 * s0))
        y1 = min(h, int(ty + self.lip_h + self.fade) + 2)
        self.roi = (slice(y0, y1), slice(x0, x1))
        gx, gy = np.meshgrid(
            np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)
        )
        field, rel = self.field_at(gx, gy)
        self.field = field.astype(np.float32)  # jaw displacement per px of gap
        self.rel = rel.astype(np.float32)  # px below the upper teeth
        self.map_x, self.map_y = gx, gy
        can_gap = (field > 0.0) & (rel > -1.0) & (rel < self.max_gap + 1.0)
        hit = np.flatnonzero(can_gap.any(axis=1))
        self.gap_rows = slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0)

    def _corner_line(self, x: Any) -> Any:
        return self.ly + (self.ry - self.ly) * (x - self.lx) / (self.rx - self.lx)

    def field_at(self, x: Any, y: Any) -> tuple[Any, Any]:
        """(displacement per px of gap, distance below the teeth) at sprite points."""
        u = (x - self.xm) / self.hw
        split = self._corner_line(x) + self.depth * np.clip(1.0 - u * u, 0.0, None)
        rel = y - split
        reach = 1.0 + 0.8 * np.clip(rel / self.fade, 0.0, 1.0)
        wx = np.clip(1.0 - (u / reach) ** 2, 0.0, None) ** 1.5
        s = np.clip((rel - self.lip_h) / self.fade, 0.0, 1.0)
        wy = np.where(rel >= 0.0, 1.0 - s * s * (3.0 - 2.0 * s), 0.0)
        return wx * wy, rel

    def drop(self, x: float, y: float, mouth_open: float) -> float:
        """How far the jaw moved the sprite point (x, y) down, px."""
        field, _ = self.field_at(np.float64(x), np.float64(y))
        return float(field) * mouth_open * self.max_gap

    def apply(self, src: np.ndarray, dst: np.ndarray, mouth_open: float) -> None:
        if mouth_open <= 0.0:
            dst[self.roi] = src[self.roi]
            return
        gap = mouth_open * self.max_gap
        disp = self.field * np.float32(gap)
        warped = cv2.remap(src, self.map_x, self.map_y - disp, cv2.INTER_LINEAR)
        # The gap (under the teeth, above the lowered lip) shows the dark mouth interior,
        # shading from near black under the teeth to dark red toward the tongue. Only the
        # rows that can hold the gap are touched: float maths on the whole patch costs more
        # than the rest of the frame's mouth work.
        rows = self.gap_rows
        rel, d = self.rel[rows], disp[rows]
        # Coverage of each pixel row [rel-0.5, rel+0.5] by the gap [0, d]: anti-aliased
        # edges, and exactly zero where the jaw did not move.
        inside = np.clip(np.minimum(rel + 0.5, d) - np.maximum(rel - 0.5, 0.0), 0.0, 1.0)
        depth = np.clip(rel * np.float32(1.0 / max(gap, 1.0)), 0.0, 1.0)[..., None]
        colour = _INTERIOR_TOP + (_INTERIOR_LOW - _INTERIOR_TOP) * depth
        part = warped[rows, :, :3]
        rgb = part.astype(np.float32)
        part[...] = (rgb + (colour - rgb) * inside[..., None] + 0.5).astype(np.uint8)
        dst[self.roi] = warped


def _gaze_shift(gaze_deg: tuple[float, float], s0: float) -> tuple[float, float]:
    """Sprite px the irises move for a gaze of (right, down) degrees."""
    ipd = math.hypot(RIGHT_EYE[0] - LEFT_EYE[0], RIGHT_EYE[1] - LEFT_EYE[1])
    radius = _EYEBALL_MM * ipd / _IPD_MM * s0
    x, y = (math.radians(a) for a in gaze_deg)
    return radius * math.sin(x) * math.cos(y), radius * math.sin(y)


class _EyeWarp:
    """A blink: the upper-lid skin stretches down over the eye, lash line leading.

    Per column, the band of lid skin above the lash line is stretched from its top down to
    the lowered lid margin, and the lash band slides with it; below the margin the eye is
    untouched (the lid occludes it rather than squashing it).
    """

    def __init__(
        self,
        to_sprite: np.ndarray,
        s0: float,
        pupil: tuple[float, float],
        lids: tuple[float, float, float, float],
        sprite_shape: tuple[int, int],
    ) -> None:
        left, right, upper, lower = lids
        px, py = pupil
        # Corners sit about 1 px below the pupils in this photo.
        (lx, ly), (rx, ry) = _apply(to_sprite, left, py + 1.0), _apply(to_sprite, right, py + 1.0)
        _, up = _apply(to_sprite, px, upper)
        _, low = _apply(to_sprite, px, lower)
        xm, hw = (lx + rx) / 2.0, (rx - lx) / 2.0
        mid = (ly + ry) / 2.0
        lash, skin = 1.5 * s0, 3.5 * s0
        h, w = sprite_shape
        x0, x1 = max(0, int(lx) - 1), min(w, int(rx) + 3)
        y0 = max(0, int(up - lash - skin) - 2)
        y1 = min(h, int(low) + 3)
        self.roi = (slice(y0, y1), slice(x0, x1))
        gx, gy = np.meshgrid(
            np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)
        )
        u = np.clip((gx[0] - xm) / hw, -1.0, 1.0)
        corner = ly + (ry - ly) * (gx[0] - lx) / (rx - lx)
        arch = (1.0 - u * u) ** 0.8  # almond-shaped lids meeting at the corners
        self.upper = corner + (up - mid) * arch  # lid margin per column
        self.lower = corner + (low - mid) * arch
        self.lash, self.skin = lash, skin
        self.map_x, self.map_y = gx, gy

    def look(
        self,
        sprite: np.ndarray,
        centre: tuple[float, float],
        radius: float,
        shift: tuple[float, float],
        clear: float,
    ) -> None:
        """Turn the eyeball in ``sprite`` (in place): the iris disc (``centre``,
        ``radius``, sprite px) moves by ``shift`` as a rigid piece over the white, seen
        through the eye opening only; the white is redrawn out to ``clear``.

        A different model from the eye-contact warp (which stretches the white): the
        white under the iris is filled row by row from either side of the disc, the
        iris is pasted back moved, and the lids occlude it. What the lids hid (of the
        iris, of the white) is taken from the nearest visible row of its column.
        """
        patch = sprite[self.roi][..., :3].astype(np.float32)
        x, y = self.map_x, self.map_y
        x0, y0 = float(x[0, 0]), float(y[0, 0])
        opening = np.clip(
            np.minimum(y + 0.5, self.lower) - np.maximum(y - 0.5, self.upper), 0.0, 1.0
        )[..., None]
        columns = x[0]

        def visible(at_x: np.ndarray) -> np.ndarray:
            """The eye at (at_x, y), rows clamped into the opening of that column."""
            top = np.interp(at_x, columns, self.upper) + 0.5
            bottom = np.maximum(np.interp(at_x, columns, self.lower) - 0.5, top)
            at_y = np.clip(y, top, bottom)
            return cv2.remap(
                patch,
                (at_x - x0).astype(np.float32),
                (at_y - y0).astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )

        px, py = centre
        r = np.hypot(x - px, y - py)
        iris = np.clip(radius + 0.5 - r, 0.0, 1.0)
        # The white behind the iris: per row, between the pixels just left and right of it.
        chord = np.sqrt(np.clip(clear * clear - (y - py) ** 2, 0.0, None)) + 1.0
        left, right = visible(px - chord), visible(px + chord)
        w = np.clip((x - (px - chord)) / (2.0 * chord), 0.0, 1.0)[..., None]
        under = np.clip(clear + 0.5 - r, 0.0, 1.0)[..., None]
        white = patch + (left + (right - left) * w - patch) * under
        move = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], np.float32)
        size = (patch.shape[1], patch.shape[0])
        disc = visible(x) * iris[..., None]
        moved = cv2.warpAffine(disc, move, size, flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(iris, move, size, flags=cv2.INTER_LINEAR)[..., None]
        eye = moved + white * (1.0 - cover)
        out = patch + (eye - patch) * opening
        sprite[self.roi][..., :3] = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def apply(self, src: np.ndarray, dst: np.ndarray, closed: float) -> None:
        if closed <= 0.0:
            dst[self.roi] = src[self.roi]
            return
        up, y = self.upper, self.map_y
        margin = up + closed * (self.lower - up)  # where the lid margin is now
        top = up - self.lash - self.skin
        skin_end = margin - self.lash
        stretched = top + (y - top) * (self.skin / (skin_end - top))
        src_y = np.where(
            (y >= top) & (y < skin_end),
            stretched,
            np.where((y >= skin_end) & (y < margin), y - (margin - up), y),
        ).astype(np.float32)
        dst[self.roi] = cv2.remap(src, self.map_x, src_y, cv2.INTER_LINEAR)


def _room(width: int, height: int, seed: int) -> np.ndarray:
    """A soft, out-of-focus office wall: window, picture, shelf with books and a plant."""
    rng = np.random.default_rng([seed, 0xB0])
    w, h = width, height
    walls = ((196, 206, 214), (182, 196, 204), (192, 204, 196), (206, 200, 200), (170, 184, 196))
    wall = np.array(walls[int(rng.integers(len(walls)))], np.float32)
    window_left = bool(rng.random() < 0.5)
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    lit = 1.0 - xx if window_left else xx  # brighter toward the window
    shade = 0.78 + 0.16 * lit + 0.08 * (1.0 - yy)
    img = np.clip(wall[None, None, :] * shade[..., None], 0, 255).astype(np.uint8)

    def box(
        x0: float, y0: float, x1: float, y1: float, colour: tuple[int, ...], t: int = -1
    ) -> None:
        if window_left:  # mirror the layout with the window
            x0, x1 = 1.0 - x1, 1.0 - x0
        p0 = (round(x0 * w), round(y0 * h))
        p1 = (round(x1 * w), round(y1 * h))
        cv2.rectangle(img, p0, p1, tuple(int(c) for c in colour), t, cv2.LINE_AA)

    def jitter(v: float, d: float = 0.02) -> float:
        return v + float(rng.uniform(-d, d))

    line = max(1, round(h / 180))
    # Window with a frame and a cross of mullions, daylight bright.
    wx0, wx1, wy0, wy1 = jitter(0.80), jitter(0.97), jitter(0.08), jitter(0.62)
    box(wx0 - 0.01, wy0 - 0.015, wx1 + 0.01, wy1 + 0.015, (226, 228, 230))
    box(wx0, wy0, wx1, (wy0 + wy1) / 2, (250, 242, 232))
    box(wx0, (wy0 + wy1) / 2, wx1, wy1, (236, 240, 238))
    box((wx0 + wx1) / 2 - 0.004, wy0, (wx0 + wx1) / 2 + 0.004, wy1, (205, 208, 210))
    box(wx0, (wy0 + wy1) / 2 - 0.006, wx1, (wy0 + wy1) / 2 + 0.006, (205, 208, 210))
    # A framed picture with two colour fields.
    px0, py0 = jitter(0.05), jitter(0.12)
    px1, py1 = px0 + jitter(0.15), py0 + jitter(0.22)
    art = ((150, 110, 60), (70, 140, 200), (90, 150, 90), (60, 80, 170))
    a, b = (art[int(i)] for i in rng.choice(len(art), size=2, replace=False))
    box(px0, py0, px1, py1, (48, 52, 58))
    box(px0 + 0.01, py0 + 0.015, px1 - 0.01, py1 - 0.015, (232, 236, 236))
    box(px0 + 0.025, py0 + 0.04, px1 - 0.025, (py0 + py1) / 2 + 0.02, a)
    box(px0 + 0.025, (py0 + py1) / 2 + 0.02, px1 - 0.025, py1 - 0.04, b)
    # A low shelf on the window side, books and a plant on it.
    sy = jitter(0.70)
    box(0.60, sy, 1.02, 1.02, (52, 78, 110))
    box(0.60, sy, 1.02, sy + 0.02, (70, 100, 136))
    bx = jitter(0.64, 0.01)
    while bx < 0.78:
        bw = float(rng.uniform(0.008, 0.02))
        bh = float(rng.uniform(0.07, 0.12))
        colour = tuple(int(c) for c in rng.integers(40, 200, size=3))
        box(bx, sy - bh, bx + bw, sy, colour)
        box(bx, sy - bh, bx + bw, sy, (30, 30, 30), line)
        bx += bw + float(rng.uniform(0.0, 0.004))
    # A pot plant: a clump of leaves (tilted ellipses in a few greens) over a clay pot.
    pcx = jitter(0.88, 0.03)
    pot = (round((1.0 - pcx if window_left else pcx) * w), round((sy - 0.035) * h))
    for _ in range(14):
        ang = float(rng.uniform(-70.0, 70.0))
        length = float(rng.uniform(0.06, 0.12)) * h
        rad = math.radians(ang - 90.0)
        centre = (
            round(pot[0] + math.cos(rad) * length * 0.5),
            round(pot[1] + math.sin(rad) * length * 0.5),
        )
        green = (int(rng.integers(30, 70)), int(rng.integers(95, 150)), int(rng.integers(40, 80)))
        axes = (max(1, round(length * 0.5)), max(1, round(0.012 * h)))
        cv2.ellipse(img, centre, axes, ang - 90.0, 0, 360, green, -1, cv2.LINE_AA)
    half = round(0.018 * w)
    cv2.rectangle(img, (pot[0] - half, pot[1]), (pot[0] + half, round(sy * h)), (62, 88, 160), -1)
    # Out of focus, as a wall a couple of metres behind the speaker is.
    blurred = cv2.GaussianBlur(img, (0, 0), 0.5 + 0.004 * h)
    vignette = 1.0 - 0.18 * ((xx - 0.5) ** 2 * 2.0 + (yy - 0.5) ** 2 * 2.0)
    return np.ascontiguousarray(np.clip(blurred * vignette[..., None], 0, 255).astype(np.uint8))


class _Scene:
    """The assets at one output size, and the renderer."""

    def __init__(
        self,
        width: int,
        height: int,
        seed: int,
        noise: float,
        gaze_deg: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        path = _photo_path()
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if photo is None or photo.shape[:2] != (512, 512):
            raise SourceError(f"synthetic source: cannot read the face photo {path}")
        self.width, self.height = width, height
        self.background = _room(width, height, seed)

        # Photo -> sprite: level the head and pre-scale (cubic, sharper than the per-frame
        # bilinear warp) so that the face box is _FACE_FRAC of the frame height.
        self.s0 = _FACE_FRAC * min(height, 0.75 * width) / (FACE_BOX[3] - FACE_BOX[1])
        eyes_mid = ((LEFT_EYE[0] + RIGHT_EYE[0]) / 2.0, (LEFT_EYE[1] + RIGHT_EYE[1]) / 2.0)
        mouth_mid = ((UPPER_LIP[0] + LOWER_LIP[0]) / 2.0, (UPPER_LIP[1] + LOWER_LIP[1]) / 2.0)
        self.centre_photo = ((eyes_mid[0] + mouth_mid[0]) / 2.0, (eyes_mid[1] + mouth_mid[1]) / 2.0)
        level = cv2.getRotationMatrix2D(self.centre_photo, _LEVEL_DEG, self.s0)
        outline = np.array(_OUTLINE, np.float64)
        pts = outline @ level[:, :2].T + level[:, 2]
        pad = 4.0 * self.s0 + 2.0
        ox, oy = pts.min(axis=0) - pad
        sw, sh = (pts.max(axis=0) - pts.min(axis=0) + 2 * pad).astype(int)
        level[:, 2] -= (ox, oy)
        self.to_sprite = level
        mask = np.zeros(photo.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 255, cv2.LINE_AA)
        # Feathered edge, pulled slightly inward so no backdrop rim shows around the hair.
        soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.5)
        alpha = np.clip((soft - 0.3) / 0.7, 0.0, 1.0)
        if self.s0 < 1.0:  # shrinking (small frames): low-pass first, warps do not average
            sigma = 0.45 / self.s0
            photo = cv2.GaussianBlur(photo, (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
        sprite_bgr = cv2.warpAffine(
            photo, level, (int(sw), int(sh)), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        )
        sprite_a = cv2.warpAffine(alpha, level, (int(sw), int(sh)), flags=cv2.INTER_LINEAR)
        a8 = np.clip(sprite_a * 255.0 + 0.5, 0, 255).astype(np.uint8)
        # Premultiplied by alpha, so that bilinear warps do not bleed edge colours.
        premul = sprite_bgr.astype(np.float32) * (a8.astype(np.float32) / 255.0)[..., None]
        self.sprite = np.ascontiguousarray(np.dstack([(premul + 0.5).astype(np.uint8), a8]))
        self.centre_sprite = _apply(level, *self.centre_photo)
        shape = (int(sh), int(sw))
        self.mouth = _MouthWarp(level, self.s0, shape)
        self.eyes = (
            _EyeWarp(level, self.s0, LEFT_EYE, _LEFT_LIDS, shape),
            _EyeWarp(level, self.s0, RIGHT_EYE, _RIGHT_LIDS, shape),
        )
        self.gaze_deg = gaze_deg
        self.gaze_shift = _gaze_shift(gaze_deg, self.s0)
        if any(gaze_deg):
            for eye, disc in zip(self.eyes, (_LEFT_IRIS, _RIGHT_IRIS), strict=True):
                at = _apply(level, *disc)
                eye.look(self.sprite, at, _IRIS_R * self.s0, self.gaze_shift, _WHITE_R * self.s0)
        self.work = self.sprite.copy()  # the sprite with this frame's mouth and eyes
        self.corners = np.array([[0, 0], [sw, 0], [0, sh], [sw, sh]], np.float64)

        # Sensor noise from a bank of precomputed fields, cropped at a per-frame offset:
        # drawing fresh Gaussian noise for every frame would cost more than the render.
        self.noise: tuple[np.ndarray, np.ndarray] | None = None
        self.noise_pad = 16
        if noise > 0.0:
            rng = np.random.default_rng([seed, 0x401])
            field = rng.normal(0.0, noise, size=(2, height + 16, width + 16, 3))
            field = np.round(field)
            self.noise = (
                np.clip(field, 0, 255).astype(np.uint8),
                np.clip(-field, 0, 255).astype(np.uint8),
            )

    def render(self, pose: Pose) -> tuple[np.ndarray, dict[str, Any]]:
        sprite, work = self.sprite, self.work
        self.mouth.apply(sprite, work, pose.mouth_open)
        for eye in self.eyes:
            eye.apply(sprite, work, 1.0 - pose.eyes_open)

        # Sprite -> frame: roll and scale about the face centre, which lands on (cx, cy).
        m = cv2.getRotationMatrix2D(self.centre_sprite, pose.roll_deg, pose.scale)
        m[0, 2] += pose.cx - self.centre_sprite[0]
        m[1, 2] += pose.cy - self.centre_sprite[1]
        out = self.background.copy()
        box = self.corners @ m[:, :2].T + m[:, 2]
        x0, y0 = np.floor(box.min(axis=0)).astype(int)
        x1, y1 = np.ceil(box.max(axis=0)).astype(int) + 1
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(self.width, int(x1)), min(self.height, int(y1))
        if x1 > x0 and y1 > y0:
            m_roi = m.copy()
            m_roi[:, 2] -= (x0, y0)
            fg = cv2.warpAffine(
                work, m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0),
            )  # fmt: skip
            # Premultiplied "over": frame = sprite + frame * (1 - alpha). Integer cv2 ops on
            # the box only; several times faster than a float blend.
            behind = cv2.bitwise_not(cv2.extractChannel(fg, 3))
            roi = out[y0:y1, x0:x1]
            roi = cv2.multiply(roi, cv2.cvtColor(behind, cv2.COLOR_GRAY2BGR), scale=1.0 / 255.0)
            out[y0:y1, x0:x1] = cv2.add(roi, cv2.cvtColor(fg, cv2.COLOR_BGRA2BGR))

        if self.noise is not None:
            k = int(_hash01(pose.index, 7) * 2 * 17 * 17)
            i, dy, dx = k % 2, (k // 2) % 17, (k // 34) % 17
            pos, neg = self.noise
            cv2.add(out, pos[i, dy : dy + self.height, dx : dx + self.width], dst=out)
            cv2.subtract(out, neg[i, dy : dy + self.height, dx : dx + self.width], dst=out)

        return out, self._truth(pose, m)

    def _truth(self, pose: Pose, m: np.ndarray) -> dict[str, Any]:
        def frame_pt(
            p: tuple[float, float], drop: bool = False, look: bool = False
        ) -> tuple[float, float]:
            x, y = _apply(self.to_sprite, *p)
            if drop:  # points under the teeth move with the jaw
                y += self.mouth.drop(x, y, pose.mouth_open)
            if look:  # pupils move with the gaze
                x, y = x + self.gaze_shift[0], y + self.gaze_shift[1]
            return _apply(m, x, y)

        upper, lower = frame_pt(UPPER_LIP), frame_pt(LOWER_LIP, drop=True)
        x0, y0, x1, y1 = FACE_BOX
        corners = [frame_pt(p) for p in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        return {
            "index": pose.index,
            "t": pose.t,
            "face_center": frame_pt(self.centre_photo),
            "face_box": (min(xs), min(ys), max(xs), max(ys)),
            "roll_deg": pose.roll_deg,
            "scale": pose.scale,
            "face_scale_px": self.s0 * pose.scale,  # frame px per photo px
            "left_eye": frame_pt(LEFT_EYE, look=True),
            "right_eye": frame_pt(RIGHT_EYE, look=True),
            "left_eye_centre": frame_pt(LEFT_EYE),
            "right_eye_centre": frame_pt(RIGHT_EYE),
            "gaze": self.gaze_deg,
            "nose_tip": frame_pt(NOSE_TIP),
            "mouth_left": frame_pt(MOUTH_LEFT),
            "mouth_right": frame_pt(MOUTH_RIGHT),
            "upper_lip": upper,
            "lower_lip": lower,
            "mouth_center": ((upper[0] + lower[0]) / 2.0, (upper[1] + lower[1]) / 2.0),
            "chin": frame_pt(CHIN, drop=True),
            "mouth_open": pose.mouth_open,
            "eyes_open": pose.eyes_open,
        }


class SyntheticSource(Source):
    """The demo camera: the astronaut, talking and moving in front of an office wall.

    ``meta["truth"]`` of each frame holds, in frame pixels: ``face_center`` (midway between
    the eye midpoint and the closed-mouth centre; the point the head rolls and scales
    about), ``face_box`` (x0, y0, x1, y1: the axis-aligned box around the rolled face
    rectangle, forehead to chin), ``left_eye``/``right_eye`` (pupils; left = image left),
    ``nose_tip``, ``mouth_left``/``mouth_right`` (corners), ``upper_lip``/``lower_lip``,
    ``mouth_center`` (midway between the lips), ``chin``; ``left_eye_centre`` /
    ``right_eye_centre`` (where the pupils are when looking at the lens: the photo's own
    gaze; equal to the pupils at ``gaze_deg`` 0) and ``gaze`` (right, down: the
    source's gaze, degrees); and ``roll_deg`` (degrees,
    positive = counter-clockwise as seen in the image, so the right eye is higher than the
    left; the photo's own tilt is levelled, so this is the eye-line angle), ``scale`` (1 =
    nominal face size, face box 30% of the frame height), ``mouth_open`` and ``eyes_open``
    (0..1), ``index`` and ``t`` (scene time, s).

    ``gaze_deg`` turns both eyes down (positive) or up by that many degrees, ``gaze_x_deg``
    toward the image right (positive) or left; at 0 (the default) the eyes are the photo's.
    The iris moves by a 12 mm eyeball's radius times the sine of the angle, the face's
    scale taken from a 63 mm inter-pupil distance (at 1280x720, 10 degrees is 2.8 px).

    Frame ``n`` depends only on (n, width, height, fps, seed, noise, gaze): ``render(n)``
    gives the same image and truth as the ``n``-th ``read()``. One thread at a time: frames
    are drawn through a shared scratch sprite.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        seed: int = 0,
        uri: str = "synthetic://",
        noise: float = 0.0,
        gaze_deg: float = 0.0,
        gaze_x_deg: float = 0.0,
    ) -> None:
        if width < 64 or height < 48:
            raise ValueError(f"synthetic source needs at least 64x48, got {width}x{height}")
        if not (fps > 0.0 and math.isfinite(fps)):
            raise ValueError(f"synthetic source needs a positive fps, got {fps}")
        if noise < 0.0:
            raise ValueError(f"noise is a standard deviation, got {noise}")
        for name, angle in (("gaze_deg", gaze_deg), ("gaze_x_deg", gaze_x_deg)):
            if not abs(angle) <= _MAX_GAZE_DEG:
                raise ValueError(f"{name} must be within +-{_MAX_GAZE_DEG:g}, got {angle}")
        self.gaze = (float(gaze_x_deg), float(gaze_deg))
        self.uri = uri
        self.seed = seed
        key = seed % (1 << 64)  # numpy's generators take no negative seeds
        self.noise = noise
        self._width, self._height, self._fps = int(width), int(height), float(fps)
        self._motion = _Motion(self._width, self._height, self._fps, key)
        self._key = key
        self._scene: _Scene | None = None
        self._pacer = Pacer(self._fps)
        self._is_open = False
        self._seq = 0

    def open(self) -> None:
        self._prepare()
        self._pacer = Pacer(self._fps)
        self._is_open = True

    def read(self, timeout: float = 1.0) -> Frame | None:
        if not self._is_open:
            raise SourceError(f"{self.uri}: read before open")
        if not self._pacer.wait(timeout):
            return None
        seq = self._seq
        image, truth = self.render(seq)
        self._seq += 1
        return Frame(
            image=image,
            seq=seq,
            t_capture=time.monotonic(),
            source=self.uri,
            meta={"truth": truth},
        )

    def close(self) -> None:
        self._is_open = False

    @property
    def size(self) -> tuple[int, int]:
        return (self._width, self._height)

    @property
    def fps(self) -> float:
        return self._fps

    def pose(self, index: int) -> Pose:
        """The motion state of frame ``index`` (no rendering)."""
        return self._motion.pose(index)

    def render(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Frame ``index`` and its truth, unpaced; prepares the assets if needed."""
        return self._prepare().render(self._motion.pose(index))

    @property
    def background(self) -> np.ndarray:
        """The empty room, as drawn behind the person (a copy)."""
        return self._prepare().background.copy()

    def _prepare(self) -> _Scene:
        if self._scene is None:
            self._scene = _Scene(self._width, self._height, self._key, self.noise, self.gaze)
        return self._scene


def contact_sheet(
    path: str | Path = "/tmp/synthetic_sheet.png",
    indices: tuple[int, ...] = (0, 37, 90, 167, 300, 500, 700, 1100),
    width: int = 1280,
    height: int = 720,
    seed: int = 0,
) -> Path:
    """Write frames, with their truth drawn on, side by side: for eyeballing the source."""
    source = SyntheticSource(width, height, seed=seed)
    tiles = []
    for index in indices:
        image, truth = source.render(index)
        for key in ("left_eye", "right_eye", "nose_tip", "mouth_center", "chin"):
            x, y = truth[key]
            cv2.drawMarker(image, (round(x), round(y)), (0, 255, 0), cv2.MARKER_CROSS, 8, 1)
        x0, y0, x1, y1 = (round(v) for v in truth["face_box"])
        cv2.rectangle(image, (x0, y0), (x1, y1), (0, 255, 255), 1)
        label = (
            f"#{index} mouth {truth['mouth_open']:.2f} eyes {truth['eyes_open']:.2f} "
            f"roll {truth['roll_deg']:+.1f}"
        )
        cv2.putText(image, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
        tiles.append(cv2.resize(image, (640, 640 * height // width), interpolation=cv2.INTER_AREA))
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)])
    out = Path(path)
    cv2.imwrite(str(out), sheet)
    return out


if __name__ == "__main__":  # python -m appliance.capture.synthetic [PATH]
    import sys

    print(contact_sheet(sys.argv[1]) if len(sys.argv) > 1 else contact_sheet())
