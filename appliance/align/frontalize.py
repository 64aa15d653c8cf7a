"""Small-angle frontalization: a face turned slightly away is turned toward the camera.

Method. The tracker's head pose says how the canonical face is turned. Each landmark
moves by the displacement its canonical vertex would make if the head turned to frontal
(yaw and pitch to zero; roll is kept, levelling owns it), less the mean displacement, so
the face stays put relative to the hair, ears and neck, which are not warped. The
person's own shape is kept: only the motion comes from the model. A thin-plate spline
through a subset of the landmarks (plus zero-motion anchors on a margin around the face)
interpolates a smooth dense field on a coarse grid; one ``cv2.remap`` of the face region
applies it. The field is continuous and vanishes at the region's edge, so the warp blends
into the frame without a seam.

Limits. Beyond ``frontalize_max_deg`` (15 deg by default) the hidden side of the face
would have to be invented, so the correction fades out from 70% of that angle and is off
beyond it; the strength is smoothed in time per face so it never pops.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from appliance.align.affine import finite_box
from appliance.align.settings import AlignSettings
from appliance.vision.overlay import FACE_OVAL, LEFT_EYE, LIPS_OUTER, RIGHT_EYE
from appliance.vision.pose import HeadPose, canonical_face

# Control points: the outline, eyes, lips, brows, nose and cheeks (~100 of the 468: the
# spline solve is cubic in their number and the field is smooth anyway).
_INNER = (1, 2, 4, 5, 6, 98, 327, 168, 197, 195, 70, 105, 107, 336, 334, 300, 50, 280, 205,
          425, 36, 266, 199, 175)  # fmt: skip
CONTROL = np.array(sorted({*FACE_OVAL, *RIGHT_EYE, *LEFT_EYE, *LIPS_OUTER, *_INNER}))
MARGIN = 0.35  # the warped region extends this far (fraction of the face size) around it
GRID_CELLS = 32  # the spline is evaluated on this many cells across, then resized
RAMP_FROM = 0.7  # full strength up to this fraction of the maximum angle
MAX_SHIFT = 0.12  # of the face size: a bad pose can never drag the face further
SMOOTH_S = 0.25  # time constant of the strength


@dataclasses.dataclass
class _Strength:
    value: float
    t: float


class Frontalizer:
    """``apply(image, faces, to_output, t)`` warps each small-angle face toward frontal.

    ``faces`` are in ``image`` pixels; their ``pose`` was estimated in the source camera
    and ``to_output`` (2x3) maps source pixels to ``image`` pixels (identity if the
    picture was not re-framed). Returns the faces with landmarks and irises moved to
    where the warp put them, so later retouching sees the new face.
    """

    def __init__(self, settings: AlignSettings) -> None:
        self.settings = settings
        self.last: dict[int, float] = {}
        self._strength: dict[int, _Strength] = {}

    def configure(self, settings: AlignSettings) -> None:
        self.settings = settings

    def apply(
        self, image: np.ndarray, faces: list[Any], to_output: np.ndarray, t: float
    ) -> list[Any]:
        seen: dict[int, _Strength] = {}
        out = []
        for face in faces:
            wanted = self._wanted(face)
            strength = self._smooth(int(getattr(face, "id", -1)), wanted, t, seen)
            moved = None
            if strength > 0.01:
                moved = frontal_landmarks(face, strength, to_output)
            if moved is not None and warp_face(image, face.landmarks, moved):
                face = _moved_face(face, moved)
            out.append(face)
        self._strength = seen
        self.last = {k: v.value for k, v in seen.items()}
        return out

    def _wanted(self, face: Any) -> float:
        pose = getattr(face, "pose", None)
        if not isinstance(pose, HeadPose):
            return 0.0
        return fade(max(abs(pose.yaw), abs(pose.pitch)), self.settings.frontalize_max_deg)

    def _smooth(self, key: int, wanted: float, t: float, seen: dict[int, _Strength]) -> float:
        previous = self._strength.get(key)
        if previous is None:
            value = wanted  # a new face: start where it should be, not from zero
        else:
            alpha = 1.0 - math.exp(-max(0.0, t - previous.t) / SMOOTH_S)
            value = previous.value + alpha * (wanted - previous.value)
        if wanted == 0.0 and value < 0.05:
            value = 0.0  # beyond the limit: off, not a residual warp
        seen[key] = _Strength(value, t)
        return value


def fade(angle_deg: float, max_deg: float) -> float:
    """1 up to RAMP_FROM * max_deg, a smooth ramp down to 0 at max_deg, 0 beyond."""
    start = RAMP_FROM * max_deg
    if not math.isfinite(angle_deg) or angle_deg >= max_deg:
        return 0.0
    if angle_deg <= start:
        return 1.0
    x = (max_deg - angle_deg) / (max_deg - start)
    return x * x * (3.0 - 2.0 * x)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head -> camera rotation with ``vision.pose``'s conventions, angles in degrees."""
    a, b, c = (-math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def frontal_landmarks(face: Any, strength: float, to_output: np.ndarray) -> np.ndarray | None:
    """Where each landmark (image px, (468, 2)) goes when the head turns ``strength`` of
    the way to frontal; None when the face or its pose is not usable."""
    pose: HeadPose = face.pose
    landmarks = np.asarray(face.landmarks, dtype=np.float64)[:, :2]
    if landmarks.shape != (468, 2) or not np.isfinite(landmarks).all():
        return None
    keep = 1.0 - strength
    turned = dataclasses.replace(
        pose, rotation=rotation(pose.yaw * keep, pose.pitch * keep, pose.roll)
    )
    vertices = canonical_face()
    motion = turned.project(vertices) - pose.project(vertices)  # source px
    if not np.isfinite(motion).all():
        return None
    motion -= motion.mean(axis=0)
    motion = motion @ np.asarray(to_output, dtype=np.float64)[:, :2].T  # image px
    size = float(np.ptp(landmarks, axis=0).max())
    longest = float(np.linalg.norm(motion, axis=1).max())
    if longest > MAX_SHIFT * size:
        motion *= MAX_SHIFT * size / longest
    return landmarks + motion


def warp_face(image: np.ndarray, landmarks: np.ndarray, moved: np.ndarray) -> bool:
    """Warp ``image`` in place so the points at ``landmarks`` appear at ``moved``.

    False (image untouched) when the face region misses the picture or the spline
    cannot be solved.
    """
    src = np.asarray(landmarks, dtype=np.float64)[CONTROL, :2]
    dst = np.asarray(moved, dtype=np.float64)[CONTROL]
    height, width = image.shape[:2]
    lo, hi = src.min(axis=0), src.max(axis=0)
    pad = MARGIN * float((hi - lo).max())
    x0, y0 = (max(0, math.floor(v - pad)) for v in lo)
    x1, y1 = min(width, math.ceil(hi[0] + pad)), min(height, math.ceil(hi[1] + pad))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return False
    anchors = _ring(lo - pad, hi + pad)
    # Backward map: for each output pixel, where to read from: spline(dst) = src - dst.
    nodes = np.vstack([dst, anchors])
    values = np.vstack([src - dst, np.zeros_like(anchors)])
    step = max(4, math.ceil(max(x1 - x0, y1 - y0) / GRID_CELLS))
    gx = np.arange(x0, x1 + step, step, dtype=np.float64)
    gy = np.arange(y0, y1 + step, step, dtype=np.float64)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    field = thin_plate(nodes, values, grid)
    if field is None:
        return False
    field = field.reshape(len(gy), len(gx), 2).astype(np.float32)
    # Grid node k sits at x0 + k * step; the resize spans [x0, x0 + (n - 1) * step].
    w, h = (len(gx) - 1) * step + 1, (len(gy) - 1) * step + 1
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)[: y1 - y0, : x1 - x0]
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    patch = cv2.remap(  # a new array: the region is read whole before it is written
        image,
        xs + field[..., 0],
        ys + field[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    image[y0:y1, x0:x1] = patch
    return True


def _ring(lo: np.ndarray, hi: np.ndarray, per_side: int = 5) -> np.ndarray:
    """Zero-motion anchors around the rectangle ``lo``..``hi``."""
    t = np.linspace(0.0, 1.0, per_side, endpoint=False)
    (ax, ay), (bx, by) = lo, hi
    top = np.stack([ax + (bx - ax) * t, np.full_like(t, ay)], axis=1)
    right = np.stack([np.full_like(t, bx), ay + (by - ay) * t], axis=1)
    bottom = np.stack([bx - (bx - ax) * t, np.full_like(t, by)], axis=1)
    left = np.stack([np.full_like(t, ax), by - (by - ay) * t], axis=1)
    return np.vstack([top, right, bottom, left])


def thin_plate(nodes: np.ndarray, values: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The thin-plate spline through ``values`` at ``nodes``, evaluated at ``points``."""
    centre = nodes.mean(axis=0)
    scale = float(np.ptp(nodes, axis=0).max()) or 1.0  # unit-sized: a well-conditioned solve
    n = (nodes - centre) / scale
    p = (points - centre) / scale
    count = len(n)
    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = _kernel(n, n) + 1e-6 * np.eye(count)
    system[:count, count] = system[count, :count] = 1.0
    system[:count, count + 1 :] = n
    system[count + 1 :, :count] = n.T
    rhs = np.zeros((count + 3, values.shape[1]))
    rhs[:count] = values
    try:
        coef = np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:
        return None
    return _kernel(p, n) @ coef[:count] + coef[count] + p @ coef[count + 1 :]


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    d2 = np.maximum(d2, 1e-12)  # r -> 0 gives r^2 log r -> 0, without a 0 * -inf
    return 0.5 * d2 * np.log(d2)


def _moved_face(face: Any, moved: np.ndarray) -> Any:
    landmarks = np.array(face.landmarks, dtype=np.float32, copy=True)
    shift = moved - landmarks[:, :2]
    landmarks[:, :2] = moved
    changes: dict[str, Any] = {"landmarks": landmarks}
    iris = getattr(face, "iris", None)
    if iris is not None:  # each iris moves with its eye's outline
        iris = np.array(iris, dtype=np.float32, copy=True)
        for k, eye in enumerate((RIGHT_EYE, LEFT_EYE)):
            iris[k] += shift[list(eye)].mean(axis=0).astype(np.float32)
        changes["iris"] = iris
    box = finite_box(moved)
    if box is not None:
        changes["box"] = box
    if dataclasses.is_dataclass(face) and not isinstance(face, type):
        return dataclasses.replace(face, **changes)
    return face
