"""6-DoF head pose: ``cv2.solvePnP`` of the mesh against MediaPipe's canonical face.

The canonical face (``data/canonical_face.npy``: the 468 vertices of MediaPipe's
``canonical_face_model.obj``, centimetres, Apache-2.0; provenance in ``data/README.md``)
is the mesh's rest shape, so landmark i matches vertex i. Only the vertices above the
upper lip are used: the lips and jaw move when the person speaks, which would read as
pitch.

Camera: a pinhole with the principal point at the frame centre and, unless given, a
focal length equal to the frame width (53 degrees horizontal field of view, in the range
of conference cameras; the angles depend little on it, the distance proportionally).

Conventions (camera frame as OpenCV's: x right, y down, z forward into the scene):

- ``yaw`` > 0: the face turns toward the image's right (the subject's own left);
- ``pitch`` > 0: the face tilts up (chin forward);
- ``roll`` > 0: the face rolls counter-clockwise as seen in the image (the eye on the
  image's right rises), the same sign as the synthetic source's ``roll_deg``;
- ``translation``: the canonical face's origin (about the centre of the head, behind the
  nose) in camera coordinates, centimetres;
- ``rotation``: head frame -> camera frame, where the head frame is the canonical face
  turned into OpenCV's axes (x toward the image right on a frontal face, y down, z away
  from the camera), so a frontal face has the identity.

Euler order: rotation = Ry(-yaw) @ Rx(-pitch) @ Rz(-roll) (roll applied first, in the
face's plane; yaw last, about the camera's vertical axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

CANONICAL_PATH = Path(__file__).resolve().parent / "data" / "canonical_face.npy"
RIGID_MIN_Y = -2.6  # cm; canonical vertices above this (the upper lip is at -3.4) are rigid
# The canonical model is y up and z toward the viewer; OpenCV's camera is y down, z forward.
_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """(468, 3) float64 vertices in OpenCV's axes (x right, y down, z away), cm."""
    vertices = np.load(CANONICAL_PATH).astype(np.float64)
    if vertices.shape != (468, 3):
        raise ValueError(f"{CANONICAL_PATH}: expected 468x3 vertices, got {vertices.shape}")
    return vertices @ _TO_OPENCV


@lru_cache(maxsize=1)
def rigid_points() -> np.ndarray:
    """Indices of the vertices that do not move with speech."""
    return np.flatnonzero(-canonical_face()[:, 1] > RIGID_MIN_Y)


@lru_cache(maxsize=1)
def _rigid_model() -> np.ndarray:
    """The canonical vertices the pose is solved against (read only)."""
    return canonical_face()[rigid_points()]


@dataclass(frozen=True)
class HeadPose:
    yaw: float  # degrees
    pitch: float
    roll: float
    rotation: np.ndarray  # (3, 3) head -> camera
    translation: np.ndarray  # (3,) cm, camera frame
    camera: np.ndarray  # (3, 3) intrinsics used

    def project(self, points: np.ndarray) -> np.ndarray:
        """Head-frame points (N, 3), cm, to image pixels (N, 2)."""
        cam = points @ self.rotation.T + self.translation
        uv = cam @ self.camera.T
        return uv[:, :2] / uv[:, 2:3]


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    f = float(focal) if focal else float(width)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees with the module's sign conventions."""
    r = rotation
    # rotation = Ry(a) Rx(b) Rz(c): row 1 is Rx(b) Rz(c)'s, free of a.
    b = math.asin(max(-1.0, min(1.0, -float(r[1, 2]))))
    a = math.atan2(float(r[0, 2]), float(r[2, 2]))
    c = math.atan2(float(r[1, 0]), float(r[1, 1]))
    return -math.degrees(a), -math.degrees(b), -math.degrees(c)


class PoseEstimator:
    """``estimate(landmarks, width, height) -> HeadPose``; keeps the last solution as
    the starting guess (steadier and about twice as fast as solving from scratch)."""

    def __init__(self, focal: float | None = None) -> None:
        self.focal = focal
        self._guess: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._guess = None

    def estimate(self, landmarks: np.ndarray, width: int, height: int) -> HeadPose | None:
        idx = rigid_points()
        model = _rigid_model()
        image = landmarks[idx, :2].astype(np.float64)
        k = camera_matrix(width, height, self.focal)
        if self._guess is None:
            ok, rvec, tvec = cv2.solvePnP(model, image, k, None, flags=cv2.SOLVEPNP_SQPNP)
        else:
            rvec, tvec = (v.copy() for v in self._guess)
            ok, rvec, tvec = cv2.solvePnP(
                model, image, k, None, rvec, tvec, True, flags=cv2.SOLVEPNP_ITERATIVE
            )
        if not ok or not np.all(np.isfinite(tvec)) or float(tvec[2, 0]) <= 0.0:
            self._guess = None
            return None
        self._guess = (rvec, tvec)
        rotation, _ = cv2.Rodrigues(rvec)
        yaw, pitch, roll = euler(rotation)
        return HeadPose(yaw, pitch, roll, rotation, tvec.reshape(3), k)
