"""Eye contact: the irises are moved toward the lens by warping inside the eye openings.

Gaze. Per eye, the *eye centre* is midway between the corners along the eye line and
midway between the lid margins across it (face-mesh corners 33/133 and 362/263, the three
middle points of each lid). The gaze offset is the iris centre less the eye centre, made
an angle with a physiological eyeball (the iris 12 mm in front of the eye's centre of
rotation; the face's scale from the outer eye corners, 89 mm on the canonical face). The
two eyes' angles are averaged and both eyes get that one correction: tracker noise is
per eye, and eyes moved by different amounts would squint.

Picture. The networks under-read gaze (see the limits below), so the iris and the lids
are measured again in the picture, starting from the landmarks (``iris_fit``): the iris
centre as the best circular limbus edge near the network's, the lid margins as the edges
over the white near the mesh's lids. Each fit counts with a confidence (none for a low
contrast, nearly closed, tiny or clipped eye, or a fit far from the network's iris: the
landmarks are used as they are), and what the picture corrects of the landmarks follows
over ``FIT_S``, held through blinks: one frame's fit is noisier than the tracker's
smoothed landmarks. The corners stay the mesh's: they move with a sideways gaze by about
a tenth of it.

Target. Vertically it is the eye centre, ``IRIS_ABOVE_LIDS`` iris radii higher where the
lids were seen in the picture (the upper lid covers more of an iris looking ahead than
the lower one): the upper lid follows the eye's vertical rotation, and the head pitch of
a canonical-face fit carries a per-person bias of several degrees, as large as the
correction. Horizontally the lids do not follow and the yaw is well determined, so the
target is where an eye looking *at the lens* shows its iris: the direction from the eye
to the camera in head coordinates (head turn and the face's place in the picture, from
the head pose). A turned head that looks at the camera is left alone.

Warp. One ``cv2.remap`` of a small region per eye, a backward map: the iris disc shifts
rigidly and the shift fades out radially over one more iris radius (or twice the shift),
so the white stretches behind the iris and compresses ahead of it; the map stays
one-to-one (shift at most ``MAX_SHIFT`` iris radii). The result replaces the picture only
inside the eyelid contour, blended over its last pixel, so lids, lashes and skin never
move: ahead of the iris the lid occludes it, and behind it what the lid hid is read as
more of what it shows (each column's rows beyond the lid repeat the last row inside it),
so an iris leaving a lid uncovers iris or white, never a lid pulled into the eye.

Fading. The strength goes smoothly to 0 when the gaze is far away (beyond
``eye_contact_max_deg``: the person looks at something else on purpose; full strength up
to 70% of it), when the eyes close (the lid aperture against the face's own recent
open aperture, so narrow eyes are not taken for closed ones), when the head is turned
(yaw or pitch 15 -> 25 degrees), when the eyes are a few pixels wide, and it is 0 when
a landmark is not finite or an eye is not wholly in the picture. Gaze and blinks act at
once (the eye's own motion hides the change); the rest, and a new face, ease in over
``RISE_S``.

Measured limits (tests/align/test_gaze.py, test_iris_fit.py). The face-mesh and iris
networks see only part of an iris movement: on the synthetic source the iris network
sees about 60% of a vertical one, and the mesh's lid and corner points follow the iris by
about a quarter of it (the whole upper face shifts, as if the head had pitched), so the
landmarks alone read a 10-degree gaze as 5-6 degrees and correct it by half. Measured in
the picture, end to end through the tracker at 1280x720 (the true iris offset, by template
matching, before -> after): 10 degrees down 2.8 -> 0.2 px (89%, landmarks alone 50%), up
70% (32%), right 61% (50%), left 80% (95%), 5 degrees down 54% (54%); with exact iris
landmarks the warp itself reaches 97%. A gaze at the lens reads 1.2 degrees (landmarks
alone 2.9) and its irises move 0.2 px. What is left is mostly the photo's own gaze, which
reads 0.8 degrees left of the lens against the corners and the head pose, and sideways
the source's moved iris disc, whose limbus reads 0.8 px higher than the photo's own. On
the shared clips (real talking heads, about at the lens) the estimate's median over each
clip stays within a few degrees of the landmarks' (vertical medians -5..+9 degrees
against -1..+12), and the fit counts fully on 53% of the eyes, partly on 40%, not at all
on 7% (low contrast, half-closed eyes). When this warp moves a real iris along the eye
(each clip re-tracked), the picture sees 58-99% of it (the tracker 52-82%); across the
eye only 13-50% (the tracker 18-32%): the warp repeats the iris under the lid it leaves,
which the limbus fit takes for more iris, where a real eye's lids follow it. Nothing is
scaled up, on purpose: a gain would scale each person's bias and noise with it, and an
over-corrected gaze (looking above the lens) is worse than a partial one.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from appliance.align.geometry import EYE_LEFT, EYE_RIGHT
from appliance.align.iris_fit import fit_eye
from appliance.align.settings import AlignSettings
from appliance.vision.overlay import LEFT_EYE, RIGHT_EYE
from appliance.vision.pose import HeadPose, canonical_face

EYEBALL_MM = 12.0  # iris centre to the eye's centre of rotation
OUTER_CORNERS = (EYE_LEFT, EYE_RIGHT)  # image left, image right on a frontal face


@dataclasses.dataclass(frozen=True)
class EyeIndices:
    """Face-mesh indices of one eye; ``iris`` is its row in ``Face.iris``."""

    iris: int
    corners: tuple[int, int]  # image-left, image-right on a frontal face
    upper: tuple[int, ...]  # the middle of the upper lid margin
    lower: tuple[int, ...]
    contour: tuple[int, ...]  # the eyelid contour, a closed loop


EYES = (
    EyeIndices(0, (33, 133), (160, 159, 158), (144, 145, 153), RIGHT_EYE),
    EyeIndices(1, (362, 263), (387, 386, 385), (373, 374, 380), LEFT_EYE),
)

GAZE_FULL = 0.7  # full strength up to this fraction of eye_contact_max_deg
HEAD_FULL_DEG, HEAD_MAX_DEG = 15.0, 25.0  # head yaw/pitch: full strength, off
BLINK_FROM, BLINK_FULL = 0.65, 0.85  # aperture / the face's open aperture: closed, open
CLOSED_FROM, CLOSED_FULL = 0.05, 0.10  # aperture / eye width, for a face without history
OPEN_RISE_S, OPEN_FALL_S = 0.5, 3.0  # the open-aperture reference follows these
SIZE_FROM, SIZE_FULL = 8.0, 14.0  # eye width, px: too small to warp, full strength
MAX_SHIFT = 0.6  # of the iris radius: keeps the backward map one-to-one
MAX_SHIFT_APERTURE = 0.35  # of the lid aperture: a narrow eye has little iris to move
RISE_S = 0.15  # time constant with which the strength rises (it falls at once)
IRIS_OF_WIDTH = 0.2  # iris radius / eye width, when the tracker gives none
MIN_SHIFT_PX = 0.05  # below this a warp changes nothing visible
LID_MARGIN = 1  # rows of the opening next to a lid not copied under it (lashes)
FIT_S = 0.1  # time constant of the picture's corrections to the landmarks
IRIS_ABOVE_LIDS = 0.1  # iris radii: how far above the lids' midpoint an eye at the lens
# shows its iris centre (the upper lid covers more of the iris than the lower one)


@dataclasses.dataclass(frozen=True)
class Eye:
    """One eye measured in image pixels."""

    centre: np.ndarray  # (2,) the eye centre
    iris: np.ndarray  # (2,) tracked iris centre
    radius: float  # iris radius, px
    width: float  # corner to corner, px
    openness: float  # lid aperture / width
    contour: np.ndarray  # (16, 2) eyelid contour
    fitted: float = 0.0  # 0..1: how much of the iris position the picture gave

    @property
    def offset_px(self) -> np.ndarray:
        """Iris centre less eye centre, image px."""
        return self.iris - self.centre


@dataclasses.dataclass(frozen=True)
class Gaze:
    """A face's two eyes and its gaze; angles as sines in the face's (u, v) axes."""

    eyes: tuple[Eye, Eye]
    u: np.ndarray  # (2,) along the eye line, image left to right on a frontal face
    v: np.ndarray  # (2,) across it, downward on an upright face
    eyeball_px: float  # EYEBALL_MM in pixels
    offset: np.ndarray  # (2,) mean over both eyes of (iris - target) / eyeball_px
    angle_deg: float  # the gaze's angle away from the lens
    target: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((2, 2)))

    @property
    def openness(self) -> float:
        return min(e.openness for e in self.eyes)

    @property
    def width(self) -> float:
        return min(e.width for e in self.eyes)

    @property
    def aperture_px(self) -> float:
        return min(e.openness * e.width for e in self.eyes)


@dataclasses.dataclass(frozen=True)
class _State:
    value: float  # strength before the blink factor
    t: float
    open_ref: float  # the face's open aperture / width, nan until measured
    fix: np.ndarray | None = None  # (2, 3) the picture's corrections, smoothed (_picture)


class EyeContact:
    """``apply(image, faces, t)`` moves each face's irises toward the lens, in place.

    ``faces`` are in ``image`` pixels (``vision.stage.Face``: landmarks, irises, pose,
    id); ``t`` is the frame's time in seconds. ``last`` holds the strength (0..1) each
    face got in the last call, by face id, and ``gazes`` what was measured of it (the
    landmarks corrected by the picture; ``Eye.fitted`` says how far the iris fit counted).
    ``use_picture`` False measures from the landmarks alone.
    """

    def __init__(self, settings: AlignSettings) -> None:
        self.settings = settings
        self.last: dict[int, float] = {}
        self.gazes: dict[int, Gaze] = {}
        self.use_picture = True
        self._states: dict[int, _State] = {}

    def configure(self, settings: AlignSettings) -> None:
        self.settings = settings

    def apply(self, image: np.ndarray, faces: list[Any], t: float) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            return image
        states: dict[int, _State] = {}
        last: dict[int, float] = {}
        gazes: dict[int, Gaze] = {}
        for face in faces or []:
            key = _face_id(face)
            previous = self._states.get(key)
            gaze = measure(face, image.shape)
            fix = None
            if gaze is not None and self.use_picture:
                raw, weights = _picture(image, gaze)
                fix = _smoothed(previous, gaze, raw, t)
                gaze = _refine(gaze, fix, weights)
            state = dataclasses.replace(self._step(previous, face, gaze, t), fix=fix)
            strength = 0.0 if gaze is None else state.value * _open_factor(gaze, state)
            if gaze is not None and strength > 0.0:
                _correct(image, gaze, strength)
            states[key], last[key] = state, strength
            if gaze is not None:
                gazes[key] = gaze
        self._states, self.last, self.gazes = states, last, gazes
        return image

    def _wanted(self, face: Any, gaze: Gaze) -> float:
        """The strength this face's measurements allow, before smoothing in time."""
        far = self.settings.eye_contact_max_deg
        return (
            _fade(gaze.angle_deg, GAZE_FULL * far, far)
            * _turn_factor(face, gaze)
            * _ramp(gaze.width, SIZE_FROM, SIZE_FULL)
        )

    def _step(self, previous: _State | None, face: Any, gaze: Gaze | None, t: float) -> _State:
        t = float(t) if math.isfinite(t) else (previous.t if previous else 0.0)
        if previous is None:  # a new face eases in: an id may be a face found again
            previous = _State(0.0, t, math.nan)
        dt = max(0.0, t - previous.t)
        wanted = 0.0 if gaze is None else self._wanted(face, gaze)
        if wanted <= previous.value:
            value = wanted  # a look away or a turn: off at once, the motion hides it
        else:
            value = previous.value + _follow(dt, RISE_S) * (wanted - previous.value)
        ref = previous.open_ref
        if gaze is not None and math.isfinite(gaze.openness):
            now = gaze.openness
            if not math.isfinite(ref):
                ref = now
            else:
                ref += _follow(dt, OPEN_RISE_S if now > ref else OPEN_FALL_S) * (now - ref)
        return _State(value, t, ref)


def _face_id(face: Any) -> int:
    try:
        return int(getattr(face, "id", -1))
    except (TypeError, ValueError):
        return -1


def _follow(dt: float, tau: float) -> float:
    """The share of the way a first-order filter with time constant ``tau`` goes in dt."""
    return 1.0 - math.exp(-dt / tau)


def _open_factor(gaze: Gaze, state: _State) -> float:
    """1 for open eyes, 0 for closed ones, against the face's own open aperture."""
    absolute = _ramp(gaze.openness, CLOSED_FROM, CLOSED_FULL)
    if not (math.isfinite(state.open_ref) and state.open_ref > 0.0):
        return absolute
    return absolute * _ramp(gaze.openness / state.open_ref, BLINK_FROM, BLINK_FULL)


def _ramp(x: float, start: float, full: float) -> float:
    """0 up to ``start``, smoothstep to 1 at ``full``; 0 for NaN."""
    if not math.isfinite(x):
        return 0.0
    if full <= start:
        return float(x >= full)
    s = min(1.0, max(0.0, (x - start) / (full - start)))
    return s * s * (3.0 - 2.0 * s)


def _fade(x: float, full: float, off: float) -> float:
    """1 up to ``full``, smoothstep to 0 at ``off``; 0 for NaN."""
    return 1.0 - _ramp(x, full, off) if math.isfinite(x) else 0.0


def _turn_factor(face: Any, gaze: Gaze) -> float:
    pose = getattr(face, "pose", None)
    if isinstance(pose, HeadPose):
        yaw, pitch = (abs(float(a)) for a in (pose.yaw, pose.pitch))
        return _fade(yaw, HEAD_FULL_DEG, HEAD_MAX_DEG) * _fade(pitch, HEAD_FULL_DEG, HEAD_MAX_DEG)
    # No pose: a turned head shows one eye narrower than the other (about 0.58 of it at
    # 25 degrees of yaw, 0.7 at 17).
    widths = [e.width for e in gaze.eyes]
    return _ramp(min(widths) / max(widths), 0.58, 0.72)


@lru_cache(maxsize=1)
def _canonical_eye_centres() -> np.ndarray:
    """(2, 3) cm: the middle of each eye's corners on the canonical face."""
    return np.array([canonical_face()[list(idx.corners)].mean(axis=0) for idx in EYES])


@lru_cache(maxsize=1)
def _canthi_cm() -> float:
    a, b = OUTER_CORNERS
    return float(np.linalg.norm(canonical_face()[a] - canonical_face()[b]))


def measure(face: Any, shape: tuple[int, ...], image: np.ndarray | None = None) -> Gaze | None:
    """Both eyes and the gaze of ``face`` in an image of ``shape``; None when the face
    cannot be corrected safely (missing or non-finite points, an eye not wholly in the
    picture, no irises). From the landmarks alone, or with ``image`` (the picture they
    are in) the irises and lids measured again in it, this frame alone (``EyeContact``
    smooths that over time)."""
    try:
        gaze = _measure(face, shape)
        if gaze is None or image is None:
            return gaze
        return _refine(gaze, *_picture(image, gaze))
    except (TypeError, ValueError, IndexError):  # not a face as the tracker makes them
        return None


def _measure(face: Any, shape: tuple[int, ...]) -> Gaze | None:
    landmarks = np.asarray(getattr(face, "landmarks", None), dtype=np.float64)
    iris = getattr(face, "iris", None)
    if landmarks.ndim != 2 or landmarks.shape[0] != 468 or landmarks.shape[1] < 2 or iris is None:
        return None
    iris = np.asarray(iris, dtype=np.float64)
    if iris.shape != (2, 5, 2):
        return None
    a, b = landmarks[OUTER_CORNERS[0]], landmarks[OUTER_CORNERS[1]]
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    span = float(np.linalg.norm(b - a))  # with depth where the mesh gives it: turn-invariant
    u = b[:2] - a[:2]
    if not span > 0.0 or not float(np.hypot(*u)) > 0.0:
        return None
    u /= float(np.hypot(*u))
    v = np.array([-u[1], u[0]])
    radii = getattr(face, "iris_radius", None)
    radii = np.asarray((np.nan, np.nan) if radii is None else radii, np.float64).reshape(-1)
    eyes = []
    for idx in EYES:
        eye = _measure_eye(landmarks[:, :2], iris[idx.iris, 0], radii, idx, u, v, shape)
        if eye is None:
            return None
        eyes.append(eye)
    eyeball_px = EYEBALL_MM / (10.0 * _canthi_cm()) * span
    return _gaze((eyes[0], eyes[1]), u, v, eyeball_px, lens_target(getattr(face, "pose", None)))


def _gaze(
    eyes: tuple[Eye, Eye], u: np.ndarray, v: np.ndarray, eyeball_px: float, target: np.ndarray
) -> Gaze | None:
    offsets = [
        np.array([(e.iris - e.centre) @ u, (e.iris - e.centre) @ v]) / eyeball_px - target[k]
        for k, e in enumerate(eyes)
    ]
    offset = np.mean(offsets, axis=0)
    if not np.isfinite(offset).all():
        return None
    angle = math.degrees(math.asin(min(1.0, float(np.hypot(*offset)))))
    return Gaze(eyes, u, v, eyeball_px, offset, angle, target)


def _picture(image: np.ndarray, gaze: Gaze) -> tuple[np.ndarray, np.ndarray]:
    """What the picture corrects of the landmarks: (2, 3) per eye the fitted iris less
    the network's along u and v, weighted by the fit's confidence, and how far the eye
    centre moves along v, in iris radii; (2,) the fits' weights (0: the network's iris)."""
    fix, weights = np.zeros((2, 3)), np.zeros(2)
    for k, eye in enumerate(gaze.eyes):
        try:
            fit = fit_eye(image, eye.contour, eye.iris, eye.radius, gaze.u, gaze.v)
        except (cv2.error, ValueError, IndexError):  # a picture it cannot read: landmarks
            fit = None
        if fit is None:
            continue
        moved = fit.weight * (fit.iris - eye.iris) / eye.radius
        lids = fit.lid_shift
        # Where the lids were seen, the target is a little above their midpoint.
        centre = 0.0 if lids is None else lids / eye.radius - IRIS_ABOVE_LIDS
        fix[k] = (moved @ gaze.u, moved @ gaze.v, centre)
        weights[k] = fit.weight
    return fix, weights


def _smoothed(previous: _State | None, gaze: Gaze, raw: np.ndarray, t: float) -> np.ndarray:
    """The picture's corrections followed with ``FIT_S``: one frame's fit is noisier than
    the tracker's smoothed landmarks. Slower as the eyes close, held while they are closed
    (nothing to fit then)."""
    if previous is None or previous.fix is None:
        return raw
    dt = max(0.0, t - previous.t) if math.isfinite(t) else 0.0
    rate = _follow(dt, FIT_S) * _open_factor(gaze, previous)
    return previous.fix + rate * (raw - previous.fix)


def _refine(gaze: Gaze, fix: np.ndarray, weights: np.ndarray) -> Gaze | None:
    """``gaze`` with each eye's iris and centre moved by the picture's corrections."""
    eyes = []
    for eye, (du, dv, lids), weight in zip(gaze.eyes, fix, weights, strict=True):
        iris = eye.iris + eye.radius * (du * gaze.u + dv * gaze.v)
        centre = eye.centre + eye.radius * lids * gaze.v
        eyes.append(dataclasses.replace(eye, iris=iris, centre=centre, fitted=float(weight)))
    return _gaze((eyes[0], eyes[1]), gaze.u, gaze.v, gaze.eyeball_px, gaze.target)


def _measure_eye(
    points: np.ndarray,
    iris: np.ndarray,
    radii: np.ndarray,
    idx: EyeIndices,
    u: np.ndarray,
    v: np.ndarray,
    shape: tuple[int, ...],
) -> Eye | None:
    contour = points[list(idx.contour)]
    corners = points[list(idx.corners)]
    upper, lower = points[list(idx.upper)].mean(axis=0), points[list(idx.lower)].mean(axis=0)
    if not (np.isfinite(contour).all() and np.isfinite(corners).all() and np.isfinite(iris).all()):
        return None
    eye_width = float(np.hypot(*(corners[1] - corners[0])))
    if not eye_width > 0.0:
        return None
    radius = float(radii[idx.iris]) if len(radii) == 2 else math.nan
    if not (0.1 * eye_width <= radius <= 0.35 * eye_width):
        radius = IRIS_OF_WIDTH * eye_width  # missing or implausible
    height, width = shape[:2]
    margin = MAX_SHIFT * radius + 3.0  # the warp reads up to one shift beyond the contour
    lo, hi = contour.min(axis=0), contour.max(axis=0)
    if min(lo) < margin or hi[0] > width - 1 - margin or hi[1] > height - 1 - margin:
        return None  # an eye at the border: the part outside cannot be warped
    mid = corners.mean(axis=0)
    centre = mid + v * float((upper + lower) / 2.0 @ v - mid @ v)
    openness = float((lower - upper) @ v) / eye_width
    return Eye(centre, iris.copy(), radius, eye_width, openness, contour)


def lens_target(pose: Any) -> np.ndarray:
    """(2, 2): per eye, the (u, v) iris offset, in eyeball radii, of an eye looking at
    the lens: horizontally the direction to the camera in head coordinates, vertically 0
    (see the module's notes)."""
    target = np.zeros((2, 2))
    if not isinstance(pose, HeadPose):
        return target
    rotation = np.asarray(pose.rotation, np.float64)
    translation = np.asarray(pose.translation, np.float64).reshape(3)
    for k, eye in enumerate(_canonical_eye_centres()):
        to_camera = -(rotation @ eye + translation)
        norm = float(np.linalg.norm(to_camera))
        if not (norm > 0.0 and math.isfinite(norm)):
            return np.zeros((2, 2))
        target[k, 0] = float((rotation.T @ to_camera)[0]) / norm
    return target


def _correct(image: np.ndarray, gaze: Gaze, strength: float) -> None:
    shift = -strength * gaze.offset * gaze.eyeball_px  # (u, v) px, the same for both eyes
    limit = min(MAX_SHIFT * min(e.radius for e in gaze.eyes), MAX_SHIFT_APERTURE * gaze.aperture_px)
    length = float(np.hypot(*shift))
    if length > limit:
        shift *= max(0.0, limit) / length
    d = shift[0] * gaze.u + shift[1] * gaze.v
    for eye in gaze.eyes:
        warp_eye(image, eye.contour, eye.iris, eye.radius, d)


def warp_eye(
    image: np.ndarray, contour: np.ndarray, iris: np.ndarray, radius: float, shift: np.ndarray
) -> bool:
    """Move the iris at ``iris`` by ``shift`` (px) inside the eyelid ``contour``, in place.

    Only pixels strictly inside the contour change. False (image untouched) when the shift
    is negligible or the region is not wholly in the picture.
    """
    d = np.asarray(shift, np.float64)
    length = float(np.hypot(*d))
    if not (length >= MIN_SHIFT_PX and math.isfinite(length) and radius > 0.0):
        return False
    height, width = image.shape[:2]
    pad = math.ceil(length) + 2
    lo, hi = contour.min(axis=0), contour.max(axis=0)
    x0, y0 = math.floor(lo[0]) - pad, math.floor(lo[1]) - pad
    x1, y1 = math.ceil(hi[0]) + pad + 1, math.ceil(hi[1]) + pad + 1
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return False
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed = np.round((contour - (x0, y0)) * 16.0).astype(np.int32)
    cv2.fillPoly(inside, [fixed], 1, cv2.LINE_8, shift=4)
    if not inside.any():
        return False
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    alpha = _edge_alpha(contour, xs, ys, inside)
    weight = _iris_falloff(xs, ys, iris + d, radius, length)
    region = image[y0:y1, x0:x1]
    source = _extend_under_lids(region, inside.astype(bool))
    map_x = (xs - x0 - d[0] * weight).astype(np.float32)
    map_y = (ys - y0 - d[1] * weight).astype(np.float32)
    warped = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    sel = alpha > 0.0
    a = alpha[sel].reshape((-1,) + (1,) * (image.ndim - 2))
    blend = region[sel] * (1.0 - a) + warped[sel] * a
    region[sel] = np.clip(blend + 0.5, 0, 255).astype(image.dtype)
    return True


def _iris_falloff(
    xs: np.ndarray, ys: np.ndarray, centre: np.ndarray, radius: float, length: float
) -> np.ndarray:
    """1 on the moved iris disc, smoothly 0 one radius further (wider for long shifts:
    behind the iris the map stretches by 1 - 1.5 * length / falloff at worst)."""
    falloff = max(radius, 2.0 * length)
    r = np.hypot(xs - centre[0], ys - centre[1])
    s = np.clip((r - radius) / falloff, 0.0, 1.0)
    return 1.0 - s * s * (3.0 - 2.0 * s)


def _edge_alpha(
    contour: np.ndarray, xs: np.ndarray, ys: np.ndarray, inside: np.ndarray
) -> np.ndarray:
    """0 outside and on the contour, 1 from a pixel inside it: the lid margin blends,
    never moves. The exact distance is taken only near the edge (it costs 16 segments
    per pixel)."""
    alpha = inside.astype(np.float64)
    near = (cv2.distanceTransform(inside, cv2.DIST_L2, 3) < 2.5) & (inside > 0)
    a = contour
    edge = np.roll(contour, -1, axis=0) - a
    lengths2 = np.maximum((edge * edge).sum(axis=1), 1e-12)
    px, py = xs[near][:, None], ys[near][:, None]
    t = np.clip(((px - a[:, 0]) * edge[:, 0] + (py - a[:, 1]) * edge[:, 1]) / lengths2, 0.0, 1.0)
    dist = np.hypot(px - a[:, 0] - t * edge[:, 0], py - a[:, 1] - t * edge[:, 1]).min(axis=1)
    alpha[near] = np.clip(dist, 0.0, 1.0)
    return alpha


def _extend_under_lids(region: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``region`` with each column's rows above and below the eye opening replaced by a
    row just inside it: what the lids hide is read as more of what they show, so an iris
    moving away from a lid reveals iris (or white) there, not the lid pulled in.
    ``LID_MARGIN`` rows are skipped: the mesh's contour can sit on the lashes."""
    rows = np.arange(region.shape[0])[:, None]
    any_in = inside.any(axis=0)
    top = np.where(any_in, inside.argmax(axis=0), 0)
    bottom = np.where(any_in, region.shape[0] - 1 - inside[::-1].argmax(axis=0), 0)
    margin = np.minimum(LID_MARGIN, (bottom - top) // 2)
    src = np.where(rows < top, top + margin, np.where(rows > bottom, bottom - margin, rows))
    src = np.where(any_in, src, rows)
    return region[src, np.arange(region.shape[1])[None, :]]
