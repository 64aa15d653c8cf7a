"""Keypoint face codec, representation: 468 landmarks <-> a short vector of integers.

A frame's 468 landmarks (frame px, depth in px too: the tracker's ``Face.landmarks``) are
split into

- **pose** (6 values): a 3-D similarity fitted on the rigid vertices (above the upper
  lip; ``appliance.vision.pose.rigid_points``) against MediaPipe's canonical face -- the
  centroid's x, y in the frame, log scale (px per canonical cm) and the rotation vector
  (head -> camera, OpenCV axes, as ``HeadPose.rotation``). The projection is orthographic
  (the mesh network's own camera model: its depth is in frame-px scale), so the fit is a
  closed-form Kabsch/Umeyama solve (under 0.1 ms), exactly invertible: the shape
  below carries whatever the similarity does not. Yaw, pitch and roll are read off the
  rotation for a renderer that needs them (``Placement``).
- **shape**: the landmarks mapped back into the canonical frame (cm), i.e. with head
  motion and size removed. It is coded as the person's **reference shape**, sent once
  with each reference image (``encode_reference``: 1404 integers, about 1.1 KB entropy
  coded, small next to the picture it travels with), plus K **expression coefficients**
  per frame: the projection of (shape - reference) on an orthonormal PCA basis of expression
  deformations (``engines.codec.basis`` learns it from tracked talking-head clips, each
  clip centred on its own mean so identity does not leak into the basis). Identity goes
  with the reference rather than into the first components because a basis learned from
  a handful of people cannot span a new person's face shape (measured: a third more
  error on a face unlike the training ones), while expression moves (jaw, lips, lids,
  brows) are much alike across people; and a generative decoder needs the reference
  frame's keypoints anyway, to warp the reference picture from them.

Quantization is uniform with one step per vector position (``KeypointCodecModel.steps``)
and rounding half up (``floor(x / step + 0.5)``), then clamped to ``bounds``. The steps
are chosen from the measured error budget (``appliance/codec/data/README.md``: with K = 32,
0.23 px mean landmark error on held-out clips, about 16 bytes per predicted frame; the
encoder takes about 0.15 ms per frame after the landmarks).

Prediction is in the integer domain: a predicted packet carries ``q[t] - q[t-1]``, an
intra packet ``q[t]``. Both ends therefore hold bit-identical ``q`` whatever their
floating-point hardware: the closed loop is exact by construction, errors cannot drift,
and a predicted frame decodes to exactly what the intra packet of the same frame would.

Symbol layout (``np.int32``, length ``6 + K + 4``), values are quantization indices:

=======  ===========================================================================
0, 1     rigid centroid x, y minus the frame centre, in 512-px units (``unit``) / step
2        (ln(px per cm / unit) - ``LOG_SCALE_ZERO``) / step
3..5     rotation vector (rad) / step
6..5+K   expression coefficients (canonical cm, orthonormal basis) / step
last 4   gaze: per eye (subject's right first) the iris centre along and across the
         eye, from the middle of its corners (33/133, 362/263), in eye widths / step
=======  ===========================================================================

where ``unit = max(width, height) / 512``: a frame of any size codes like a 512 px one,
so the steps (and error figures) hold relative to the picture. Intra values lie in
``[-bounds, bounds]``, predicted ones in ``[-2 * bounds, 2 * bounds]`` (in practice a
few units). The reference: ``(468 * 3,)`` int32, ``round((shape - mean) / ref_step)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from appliance.codec.entropy import EntropyModel
from appliance.vision.pose import canonical_face, euler, rigid_points

POINTS = 468
POSE_SIZE = 6
GAZE_SIZE = 4  # per eye: the iris centre along and across the eye, in eye widths
EYE_CORNERS = ((33, 133), (362, 263))  # subject's right eye, then left
EYE_LIDS = ((159, 145), (386, 374))  # upper and lower lid middles
IRIS_RATIO = 0.2  # iris radius / eye width: the mesh's iris rim, the same for everyone
IRIS_POINTS = 10  # decoded layout: 468 + 5 per eye (centre, then rim: +u, +n, -u, -n)
UNIT_PX = 512.0  # frame size the pose steps are stated for
LOG_SCALE_ZERO = math.log(16.0)  # px/cm: a face about 280 px tall in a 512 px frame
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "expression_basis.npz"
FORMAT = 2


class KeypointCodecError(ValueError):
    """Bad input to the codec: wrong shape, non-finite values, symbols out of range."""


def check_landmarks(landmarks: Any) -> np.ndarray:
    """``landmarks`` (a ``Face`` or a (468, 3) array) as float64, or a clear error."""
    points = getattr(landmarks, "landmarks", landmarks)
    array = np.asarray(points, dtype=np.float64)
    if array.shape != (POINTS, 3):
        raise KeypointCodecError(
            f"landmarks must be ({POINTS}, 3) frame px with depth (the tracker's "
            f"Face.landmarks), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=1)))
        raise KeypointCodecError(f"landmarks hold {bad} non-finite points (NaN or inf)")
    return array


@lru_cache(maxsize=1)
def _template() -> tuple[np.ndarray, np.ndarray]:
    """Rigid indices and the canonical rigid vertices centred on their centroid."""
    idx = rigid_points()
    model = canonical_face()[idx]
    return idx, model - model.mean(axis=0)


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis * angle of a proper rotation. Angles near pi (a face upside down and turned
    away, which the tracker never holds) are not handled."""
    cos = max(-1.0, min(1.0, (float(np.trace(rotation)) - 1.0) / 2.0))
    angle = math.acos(cos)
    axis = np.array(
        [
            rotation[2, 1] - rotation[1, 2],
            rotation[0, 2] - rotation[2, 0],
            rotation[1, 0] - rotation[0, 1],
        ]
    )
    sin = math.sin(angle)
    if sin < 1e-9:
        return axis / 2.0  # the small-angle limit of angle / (2 sin(angle))
    return axis * (angle / (2.0 * sin))


def rotation_matrix(vector: np.ndarray) -> np.ndarray:
    """Rodrigues' formula; written out so both ends compute it the same way."""
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = (float(v) / angle for v in vector)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def normalize(landmarks: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Similarity fit on the rigid points: (centre (3,) px, scale px/cm, rotation, shape).

    ``landmarks == scale * (shape - c) @ rotation.T + centre`` exactly, ``c`` the
    canonical rigid centroid; ``shape`` is (468, 3) in the canonical frame (cm). Umeyama's
    least-squares solution on the rigid vertices, reflections excluded.
    """
    idx, model = _template()
    centre = landmarks[idx].mean(axis=0)
    moved = landmarks[idx] - centre
    u, s, vt = np.linalg.svd(moved.T @ model)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    scale = float((s[0] + s[1] + d * s[2]) / np.sum(model * model))
    shape = (landmarks - centre) @ rotation / scale + _template_centre()
    return centre, scale, rotation, shape


@lru_cache(maxsize=1)
def _template_centre() -> np.ndarray:
    """The rigid vertices' centroid: the canonical point the pose's centre stands for."""
    return canonical_face()[rigid_points()].mean(axis=0)


@dataclass(frozen=True)
class Placement:
    """Where the decoded face sits: what a renderer needs besides the shape."""

    centre: tuple[float, float]  # rigid centroid, frame px
    scale: float  # frame px per canonical cm
    rotation: np.ndarray  # (3, 3) head -> camera, as HeadPose.rotation
    yaw: float  # degrees, appliance.vision.pose conventions
    pitch: float
    roll: float


class KeypointCodecModel:
    """The basis and the quantizer: ``analyze`` / ``quantize`` / ``synthesize``.

    ``mean`` (468, 3): mean normalized shape of the training clips (predicts the
    reference); ``basis`` (K, 1404) orthonormal rows; ``steps`` and ``bounds`` (6 + K + 4,):
    quantizer step and largest intra index per symbol position; ``ref_step``: the
    reference shape's step (cm).
    """

    def __init__(
        self,
        mean: np.ndarray,
        basis: np.ndarray,
        steps: np.ndarray,
        bounds: np.ndarray,
        ref_step: float,
        meta: dict[str, Any] | None = None,
        priors: EntropyModel | None = None,
    ) -> None:
        self.mean = np.asarray(mean, np.float64).reshape(POINTS, 3)
        self.basis = np.asarray(basis, np.float64)
        self.k = int(self.basis.shape[0])
        self.steps = np.asarray(steps, np.float64)
        self.bounds = np.asarray(bounds, np.int64)
        self.ref_step = float(ref_step)
        self.meta = dict(meta or {})
        if self.basis.shape != (self.k, POINTS * 3):
            raise ValueError(f"basis must be (K, {POINTS * 3}), got {self.basis.shape}")
        if self.steps.shape != (self.size,) or self.bounds.shape != (self.size,):
            raise ValueError(f"steps and bounds must have {self.size} entries")
        if not (np.all(self.steps > 0) and np.all(self.bounds > 0) and self.ref_step > 0):
            raise ValueError("steps, bounds and ref_step must be positive")
        # entropy priors trained on real symbols (engines.codec.basis); untrained without
        self.priors = priors or EntropyModel.default(self.size)
        if self.priors.size != self.size:
            raise ValueError(f"priors cover {self.priors.size} positions, not {self.size}")

    @property
    def size(self) -> int:
        """Symbols per frame."""
        return POSE_SIZE + self.k + GAZE_SIZE

    @classmethod
    def load(cls, path: Path | str = DEFAULT_MODEL) -> KeypointCodecModel:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"{path}: format {int(data['format'])}, expected {FORMAT}")
            meta = {k: _plain(data[k]) for k in data.files if k.startswith("meta_")}
            priors = None
            if "priors" in data.files:
                priors = EntropyModel.from_bytes(bytes(data["priors"].astype(np.uint8)))
            return cls(
                data["mean"],
                data["basis"],
                data["steps"],
                data["bounds"],
                float(data["ref_step"]),
                meta,
                priors,
            )

    def save(self, path: Path | str) -> None:
        arrays: dict[str, Any] = {
            "format": np.int32(FORMAT),
            "mean": self.mean.astype(np.float32),
            "basis": self.basis.astype(np.float32),
            "steps": self.steps,
            "bounds": self.bounds.astype(np.int32),
            "ref_step": np.float32(self.ref_step),
            "priors": np.frombuffer(self.priors.to_bytes(), np.uint8),
        }
        arrays.update((k, np.asarray(v)) for k, v in self.meta.items())
        np.savez_compressed(path, **arrays)

    # --- the reference (identity) shape -------------------------------------------------

    def encode_reference(self, landmarks: Any) -> np.ndarray:
        """(1404,) int32: the frame's normalized shape, relative to ``mean``."""
        shape = normalize(check_landmarks(landmarks))[3]
        q = np.floor((shape - self.mean) / self.ref_step + 0.5).ravel()
        return np.clip(q, -(2**15), 2**15 - 1).astype(np.int32)

    def decode_reference(self, symbols: np.ndarray) -> np.ndarray:
        """(468, 3) float64 reference shape, canonical cm."""
        q = np.asarray(symbols)
        if q.shape != (POINTS * 3,) or not np.issubdtype(q.dtype, np.integer):
            raise KeypointCodecError(f"reference symbols must be ({POINTS * 3},) integers")
        return self.mean + q.reshape(POINTS, 3).astype(np.float64) * self.ref_step

    # --- per frame ------------------------------------------------------------------------

    def analyze(
        self,
        landmarks: Any,
        width: int,
        height: int,
        reference: np.ndarray,
        iris: np.ndarray | None = None,
    ) -> np.ndarray:
        """Unquantized parameters (6 + K + 4,) float64; ``reference`` from
        decode_reference; ``iris`` (2, 2) iris centres px (gaze 0, straight ahead, without)."""
        unit = _unit(width, height)
        points = check_landmarks(landmarks)
        centre, scale, rotation, shape = normalize(points)
        pose = [
            (centre[0] - width / 2.0) / unit,
            (centre[1] - height / 2.0) / unit,
            math.log(scale / unit) - LOG_SCALE_ZERO,
            *rotation_vector(rotation),
        ]
        coefficients = self.basis @ (shape - reference).ravel()
        gaze = np.zeros(GAZE_SIZE) if iris is None else gaze_of(points, iris)
        return np.concatenate([pose, coefficients, gaze])

    def quantize(self, params: np.ndarray) -> np.ndarray:
        q = np.floor(np.asarray(params, np.float64) / self.steps + 0.5)
        return np.clip(q, -self.bounds, self.bounds).astype(np.int32)

    def check_symbols(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q)
        if q.shape != (self.size,) or not np.issubdtype(q.dtype, np.integer):
            raise KeypointCodecError(f"symbols must be ({self.size},) integers, got {q.shape}")
        if np.any(np.abs(q.astype(np.int64)) > self.bounds):
            raise KeypointCodecError("symbols outside the model's bounds (corrupt stream?)")
        return q.astype(np.int64)

    def shape(self, q: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """(468, 3) decoded canonical shape of absolute symbols ``q``."""
        end = POSE_SIZE + self.k
        coefficients = self.check_symbols(q)[POSE_SIZE:end] * self.steps[POSE_SIZE:end]
        return reference + (coefficients @ self.basis).reshape(POINTS, 3)

    def placement(self, q: np.ndarray, width: int, height: int) -> Placement:
        unit = _unit(width, height)
        pose = self.check_symbols(q)[:POSE_SIZE] * self.steps[:POSE_SIZE]
        rotation = rotation_matrix(pose[3:6])
        yaw, pitch, roll = euler(rotation)
        return Placement(
            (float(pose[0] * unit + width / 2.0), float(pose[1] * unit + height / 2.0)),
            float(math.exp(pose[2] + LOG_SCALE_ZERO) * unit),
            rotation,
            yaw,
            pitch,
            roll,
        )

    def synthesize(
        self, q: np.ndarray, width: int, height: int, reference: np.ndarray, depth: bool = False
    ) -> np.ndarray:
        """Landmarks (468, 2) float32 frame px (468, 3 with ``depth``) of symbols ``q``."""
        place = self.placement(q, width, height)
        shape = self.shape(q, reference) - _template_centre()
        points = place.scale * shape @ place.rotation.T
        points[:, 0] += place.centre[0]
        points[:, 1] += place.centre[1]
        return (points if depth else points[:, :2]).astype(np.float32)

    def render_points(
        self, q: np.ndarray, width: int, height: int, reference: np.ndarray
    ) -> np.ndarray:
        """What a renderer moves: the 468 landmarks with depth, then the two irises
        (``IRIS_POINTS``), (478, 3) float64 frame px."""
        landmarks = self.synthesize(q, width, height, reference, depth=True).astype(np.float64)
        gaze = self.check_symbols(q)[-GAZE_SIZE:] * self.steps[-GAZE_SIZE:]
        return np.vstack([landmarks, iris_points(landmarks, gaze)])


def _eye_frame(points: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(middle, unit along, unit across, width) of an eye, from its corners."""
    a, b = (points[i, :2] for i in EYE_CORNERS[eye])
    along = b - a
    width = float(np.linalg.norm(along)) or 1.0
    u = along / width
    return (a + b) / 2.0, u, np.array([-u[1], u[0]]), width


def gaze_of(landmarks: np.ndarray, iris: np.ndarray) -> np.ndarray:
    """(4,): each iris centre along and across its eye, in eye widths from the middle of
    the corners. A missing iris (NaN) reads as 0, straight ahead."""
    centres = np.asarray(iris, np.float64).reshape(2, 2)
    out = np.zeros(GAZE_SIZE)
    for eye in range(2):
        if not np.all(np.isfinite(centres[eye])):
            continue
        middle, u, n, width = _eye_frame(landmarks, eye)
        offset = centres[eye] - middle
        out[2 * eye : 2 * eye + 2] = (offset @ u / width, offset @ n / width)
    return out


def iris_points(landmarks: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """(10, 3): per eye the iris centre and 4 rim points, placed by ``gaze`` on the eye,
    kept inside the lids (a closing eye squeezes the iris instead of folding the mesh)."""
    out = np.empty((IRIS_POINTS, 3))
    for eye in range(2):
        middle, u, n, width = _eye_frame(landmarks, eye)
        upper, lower = (landmarks[i, :2] for i in EYE_LIDS[eye])
        half_open = 0.45 * abs(float((lower - upper) @ n))
        half_wide = 0.45 * width
        along = float(np.clip(gaze[2 * eye] * width, -half_wide, half_wide))
        across = float(np.clip(gaze[2 * eye + 1] * width, -half_open, half_open))
        radius = IRIS_RATIO * width
        r_along = min(radius, max(0.0, half_wide - abs(along)))
        r_across = min(radius, max(0.0, half_open - abs(across)))
        centre = middle + along * u + across * n
        rim = [centre + r_along * u, centre + r_across * n, centre - r_along * u,
               centre - r_across * n]  # fmt: skip
        depth = float(np.mean([landmarks[i, 2] for i in EYE_CORNERS[eye]]))
        block = np.array([centre, *rim])
        out[5 * eye : 5 * eye + 5, :2] = block
        out[5 * eye : 5 * eye + 5, 2] = depth
    return out


def _plain(value: np.ndarray) -> Any:
    return value.item() if value.ndim == 0 else value


def _unit(width: int, height: int) -> float:
    if width <= 0 or height <= 0:
        raise KeypointCodecError(f"frame size must be positive, got {width}x{height}")
    return max(width, height) / UNIT_PX


@dataclass(frozen=True)
class Packet:
    """One frame's symbols: absolute (``intra``) or the difference to the previous frame."""

    intra: bool
    symbols: np.ndarray  # (6 + K + 4,) int32


class _Session:
    def __init__(self, model: KeypointCodecModel, width: int, height: int) -> None:
        _unit(width, height)
        self.model, self.width, self.height = model, int(width), int(height)
        self.reference: np.ndarray | None = None
        self.previous: np.ndarray | None = None  # last absolute symbols, int32

    def reset(self) -> None:
        """Forget the previous frame (the next packet must be intra)."""
        self.previous = None

    def _reference(self) -> np.ndarray:
        if self.reference is None:
            raise KeypointCodecError("no reference shape yet: set_reference first")
        return self.reference

    def landmarks(self, q: np.ndarray) -> np.ndarray:
        return self.model.synthesize(q, self.width, self.height, self._reference())


class KeypointEncoder(_Session):
    """On the camera: ``set_reference`` with each reference picture, ``encode`` per frame."""

    def set_reference(self, landmarks: Any) -> np.ndarray:
        """Reference symbols to send with the reference picture; the next packet is intra."""
        symbols = self.model.encode_reference(landmarks)
        self.reference = self.model.decode_reference(symbols)
        self.previous = None
        return symbols

    def encode(self, landmarks: Any, intra: bool = False, iris: np.ndarray | None = None) -> Packet:
        """The frame's packet; intra when asked or when there is no previous frame.
        Without ``iris`` (the tracker lost it) the gaze stays where it was."""
        params = self.model.analyze(landmarks, self.width, self.height, self._reference(), iris)
        q = self.model.quantize(params)
        if (iris is None or not np.all(np.isfinite(iris))) and self.previous is not None:
            q[-GAZE_SIZE:] = self.previous[-GAZE_SIZE:]
        intra = intra or self.previous is None
        symbols = q if intra else q - self.previous
        self.previous = q
        return Packet(intra, symbols.astype(np.int32))


class KeypointDecoder(_Session):
    """On the receiver: the mirror of ``KeypointEncoder``."""

    def set_reference(self, symbols: np.ndarray) -> None:
        self.reference = self.model.decode_reference(symbols)
        self.previous = None

    def decode(self, packet: Packet) -> np.ndarray:
        """Landmarks (468, 2) float32 frame px of the packet."""
        symbols = np.asarray(packet.symbols)
        if symbols.shape != (self.model.size,) or not np.issubdtype(symbols.dtype, np.integer):
            raise KeypointCodecError(f"packet must hold ({self.model.size},) integers")
        q = symbols.astype(np.int64)
        if not packet.intra:
            if self.previous is None:
                raise KeypointCodecError("predicted packet without a previous frame")
            q = q + self.previous
        q = self.model.check_symbols(q).astype(np.int32)
        out = self.landmarks(q)
        self.previous = q
        return out
