"""468-point face mesh on a rotated square region, MediaPipe's recipe.

The region comes from a detection (box centre, eye keypoints 0/1 for the angle) or from
the previous frame's landmarks (eye corners 33/263 for the angle); it is square, 1.5x the
face, and rotated so that the eye line is horizontal in the 192x192 crop. The network's
points are mapped back through the inverse of the crop's affine transform.

One deliberate difference from MediaPipe: the landmark box is taken in the eye-aligned
frame, not axis-aligned in the image. An axis-aligned box of a rolled face is larger
than the face and grows with the roll, so the crop (and with it the landmarks) would
not rotate with the face; in the aligned frame the region is rotation-equivariant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.vision.crops import rotated_crop
from appliance.vision.detect import LEFT_EYE, RIGHT_EYE, Detection
from appliance.vision.net import Network

POINTS = 468
ROI_SCALE = 1.5  # region side / face size, for detections and for landmarks alike
PRESENCE_MIN = 0.5  # the bundle's postprocess.presence_min
EYE_OUTER = (33, 263)  # outer eye corners: image left, image right on a frontal face


@dataclass(frozen=True)
class Roi:
    """A square region: centre (frame px), side (px), angle (radians) of the eye line
    in the image (0: level; positive: the image-right eye lower, y pointing down)."""

    cx: float
    cy: float
    side: float
    angle: float

    def corners(self) -> np.ndarray:
        """(4, 2) corners in frame px (top-left, top-right, bottom-right, bottom-left)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        half = self.side / 2.0
        local = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64) * half
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + (self.cx, self.cy)

    def inside_fraction(self, width: int, height: int) -> float:
        """Share of the region's bounding box inside the frame (cheap, conservative)."""
        pts = self.corners()
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        iw = max(0.0, min(x1, width) - max(x0, 0.0))
        ih = max(0.0, min(y1, height) - max(y0, 0.0))
        return float(iw * ih / max((x1 - x0) * (y1 - y0), 1e-9))


def _angle(start: np.ndarray, end: np.ndarray) -> float:
    return math.atan2(float(end[1] - start[1]), float(end[0] - start[0]))


def roi_from_detection(det: Detection, scale: float = ROI_SCALE) -> Roi:
    """Box centre, long side x ``scale``, angle of the eye keypoints."""
    x0, y0, x1, y1 = (float(v) for v in det.box)
    angle = _angle(det.keypoints[RIGHT_EYE], det.keypoints[LEFT_EYE])
    return Roi((x0 + x1) / 2.0, (y0 + y1) / 2.0, scale * max(x1 - x0, y1 - y0), angle)


def roi_from_landmarks(landmarks: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """The landmarks' box in the eye-aligned frame, long side x ``scale``."""
    xy = landmarks[:, :2].astype(np.float64)
    angle = _angle(xy[EYE_OUTER[0]], xy[EYE_OUTER[1]])
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # frame -> aligned (rotate by -angle)
    aligned = xy @ rot.T
    lo, hi = aligned.min(axis=0), aligned.max(axis=0)
    cx, cy = ((lo + hi) / 2.0) @ rot  # aligned -> frame (rot is orthonormal)
    return Roi(float(cx), float(cy), scale * float(max(hi - lo)), angle)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Axis-aligned (x0, y0, x1, y1) around the points, float32."""
    xy = landmarks[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)


def crop(bgr: np.ndarray, roi: Roi, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB crop ``size`` x ``size`` of ``roi`` and its 2x3 frame -> crop matrix."""
    patch, m = rotated_crop(bgr, np.array([roi.cx, roi.cy]), roi.side, roi.angle, size)
    return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB), m


def to_frame(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Network points (N, 2+) in crop pixels back to frame pixels (inverse of ``m``).

    The networks give continuous coordinates in which pixel i spans [i, i+1) (measured:
    the mesh on a crop and on its mirror image gives x + x' = 191.8 for a 192-px crop,
    not 191), while ``m`` maps OpenCV pixel centres (pixel i at i): hence the -0.5.
    A third coordinate (depth) is scaled like x and y, so it is in frame pixels too.
    """
    inv = cv2.invertAffineTransform(m)
    out = points.astype(np.float64).copy()
    out[:, :2] = (points[:, :2] - 0.5) @ inv[:, :2].T + inv[:, 2]
    if points.shape[1] > 2:
        out[:, 2:] *= math.sqrt(abs(float(np.linalg.det(inv[:, :2]))))
    return out


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, x))))


@dataclass(frozen=True)
class MeshResult:
    landmarks: np.ndarray  # (468, 3) float32, frame px (z: relative depth, frame px scale)
    presence: float  # face presence probability in the region
    roi: Roi


class FaceMesh:
    """``run(bgr, roi) -> MeshResult`` with the 192x192 face landmark network."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self._points = self.net.output(POINTS * 3)
        self._presence = self.net.output(1)

    def run(self, bgr: np.ndarray, roi: Roi) -> MeshResult:
        rgb, m = crop(bgr, roi, self.net.size)
        out = self.net.run(rgb)
        pts = out[self._points].reshape(POINTS, 3)
        presence = sigmoid(float(out[self._presence].reshape(-1)[0]))
        return MeshResult(to_frame(pts, m).astype(np.float32), presence, roi)
