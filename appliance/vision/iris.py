"""Irises: 5 points per eye (centre, then 4 on the rim) and a radius, in frame pixels.

Each eye is cut as MediaPipe's iris graph (and ``engines.crops.eye_crops``, which the
bundle was calibrated and gated on) cuts it: a square of 2.3x the eye-corner distance,
centred between the corners, corners horizontal, 64x64. The network is trained on one
eye, the subject's right eye as it appears in the image (outer corner 33 on the crop's
left, inner corner 133 on its right); the other eye (inner 362, outer 263) is mirrored
horizontally so that it looks the same, and its points are mirrored back. Checked on
real frames (``tests/vision/test_iris.py``): with this convention the network's contour
points 0 and 8 land on the mesh's outer and inner corners of both eyes. (The network
answers a mirrored right eye nearly as well, with its contour order reversed, so the
corners alone cannot tell the convention; MediaPipe's graph and the gates decide it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.vision.landmarks import Roi, crop, to_frame
from appliance.vision.net import Network

CONTOUR_POINTS = 71
IRIS_POINTS = 5
EYE_SCALE = 2.3  # crop side / eye-corner distance
# (first corner, second corner, mirror): the first corner ends up on the crop's left.
EYES = ((33, 133, False), (362, 263, True))


@dataclass(frozen=True)
class IrisResult:
    """Per eye, index 0 the subject's right eye (mesh 33-133, image left when frontal)."""

    iris: np.ndarray  # (2, 5, 2) float32 frame px: centre, then 4 rim points
    radius: np.ndarray  # (2,) float32 frame px: mean centre-to-rim distance
    contour: np.ndarray  # (2, 71, 2) float32 frame px: eyelids and brow


def eye_roi(landmarks: np.ndarray, first: int, second: int) -> Roi:
    p, q = landmarks[first, :2].astype(np.float64), landmarks[second, :2].astype(np.float64)
    d = q - p
    centre = (p + q) / 2.0
    return Roi(
        float(centre[0]),
        float(centre[1]),
        EYE_SCALE * float(np.hypot(*d)),
        math.atan2(d[1], d[0]),
    )


class IrisModel:
    """``run(bgr, landmarks) -> IrisResult`` from a face's 468 mesh points (frame px)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self._contour = self.net.output(CONTOUR_POINTS * 3)
        self._iris = self.net.output(IRIS_POINTS * 3)

    def run(self, bgr: np.ndarray, landmarks: np.ndarray) -> IrisResult:
        size = self.net.size
        irises, contours = [], []
        for first, second, mirror in EYES:
            rgb, m = crop(bgr, eye_roi(landmarks, first, second), size)
            if mirror:
                rgb = np.ascontiguousarray(rgb[:, ::-1])
            out = self.net.run(rgb)
            iris = out[self._iris].reshape(IRIS_POINTS, 3)[:, :2].astype(np.float64)
            contour = out[self._contour].reshape(CONTOUR_POINTS, 3)[:, :2].astype(np.float64)
            if mirror:
                # A mirrored array maps column u to size-1-u; in the network's continuous
                # coordinates (pixel i spans [i, i+1)) that is x -> size - x.
                iris[:, 0] = size - iris[:, 0]
                contour[:, 0] = size - contour[:, 0]
            irises.append(to_frame(iris, m))
            contours.append(to_frame(contour, m))
        iris_px = np.stack(irises).astype(np.float32)
        radius = np.linalg.norm(iris_px[:, 1:] - iris_px[:, :1], axis=-1).mean(axis=1)
        return IrisResult(iris_px, radius.astype(np.float32), np.stack(contours).astype(np.float32))
