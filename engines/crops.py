"""Model-sized crops from full frames, the way MediaPipe's graphs cut them.

Detector and segmenter see the whole frame; the mesh sees a rotated square around
the detected face (1.5x the box, eyes horizontal); the iris model sees a rotated
square around each eye's corners (2.3x their distance), the second eye mirrored.
The crops are made with the TFLite originals so the calibration data does not
depend on the conversion being checked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from appliance.vision import anchors
from appliance.vision.crops import letterbox, rotated_crop

Model = Callable[[np.ndarray], dict[str, np.ndarray]]


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def face_crop(
    rgb: np.ndarray, detector: Model, out: int = 192
) -> tuple[np.ndarray, np.ndarray, float]:
    """The mesh input for the best face: (crop, frame->crop matrix, detector score)."""
    boxed, scale, dx, dy = letterbox(rgb, anchors.INPUT_SIZE)
    result = detector(boxed)
    row, score = anchors.top_detection(result["regressors"], result["classificators"])
    pts = row.reshape(-1, 2) * anchors.INPUT_SIZE  # box corners then keypoints, 128 px
    pts = (pts - [dx, dy]) / scale  # frame px
    (x0, y0), (x1, y1), right_eye, left_eye = pts[0], pts[1], pts[2], pts[3]
    theta = float(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    side = 1.5 * max(x1 - x0, y1 - y0)
    crop, m = rotated_crop(rgb, np.array([(x0 + x1) / 2, (y0 + y1) / 2]), side, theta, out)
    return crop, m, score


def eye_crops(
    rgb: np.ndarray, landmarks_crop: np.ndarray, m: np.ndarray, out: int = 64
) -> list[np.ndarray]:
    """Both iris inputs from mesh landmarks (192-px crop coordinates, frame->crop ``m``)."""
    import cv2

    inv = cv2.invertAffineTransform(m)
    pts = landmarks_crop[:, :2] @ inv[:, :2].T + inv[:, 2]
    crops = []
    for a, b, mirror in ((33, 133, False), (362, 263, True)):
        p, q = pts[a], pts[b]
        theta = float(np.arctan2(q[1] - p[1], q[0] - p[0]))
        side = 2.3 * float(np.hypot(*(q - p)))
        crop, _ = rotated_crop(rgb, (p + q) / 2, side, theta, out)
        crops.append(crop[:, ::-1].copy() if mirror else crop)
    return crops
