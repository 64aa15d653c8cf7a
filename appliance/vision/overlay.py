"""Drawing faces on the preview: mesh contours, irises, box and id, pose axes.

"Tessellation-lite": the contours of MediaPipe's ``face_mesh_connections.py``
(``FACEMESH_FACE_OVAL``, ``_LIPS``, ``_LEFT_EYE``/``_RIGHT_EYE``, ``_*_EYEBROW``; mediapipe
0.10.21, Apache-2.0) as ordered polylines, drawn with one ``cv2.polylines`` call per
face: about 0.3 ms at 1280x720, cheap enough for every preview frame. The full
tessellation (2,556 edges) says little more on a small preview and costs ten times as much.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from appliance.vision.pose import canonical_face

if TYPE_CHECKING:
    from appliance.vision.stage import Face

# Closed loops (the first index is not repeated at the end).
FACE_OVAL = (
    10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338,
)  # fmt: skip
LIPS_OUTER = (
    0, 37, 39, 40, 185, 61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267,
)  # fmt: skip
LIPS_INNER = (
    13, 82, 81, 80, 191, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312,
)  # fmt: skip
RIGHT_EYE = (7, 33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163)
LEFT_EYE = (249, 263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390)
# Open polylines: each brow as its upper and lower edge.
RIGHT_BROW = ((46, 53, 52, 65, 55), (70, 63, 105, 66, 107))
LEFT_BROW = ((276, 283, 282, 295, 285), (300, 293, 334, 296, 336))

CLOSED = (FACE_OVAL, LIPS_OUTER, LIPS_INNER, RIGHT_EYE, LEFT_EYE)
OPEN = (*RIGHT_BROW, *LEFT_BROW)

MESH_COLOUR = (80, 220, 80)  # BGR
IRIS_COLOUR = (255, 200, 0)
BOX_COLOUR = (0, 200, 255)
AXIS_COLOURS = ((0, 0, 255), (0, 255, 0), (255, 0, 0))  # right red, up green, forward blue
AXIS_CM = 6.0
NOSE_TIP = 1


def _points(landmarks: np.ndarray, chains: Sequence[Sequence[int]], shift: int) -> list[np.ndarray]:
    # Fixed-point coordinates (``shift`` fractional bits): sub-pixel lines, no rounding wobble.
    xy = np.round(landmarks[:, :2] * (1 << shift)).astype(np.int32)
    return [xy[list(chain)].reshape(-1, 1, 2) for chain in chains]


def draw_faces(bgr: np.ndarray, faces: Sequence[Face], copy: bool = True) -> np.ndarray:
    """``bgr`` with the faces drawn on (a copy unless ``copy`` is False)."""
    out = bgr.copy() if copy else bgr
    if not faces:
        return out
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 480))
    shift = 4
    for face in faces:
        lm = face.landmarks
        cv2.polylines(out, _points(lm, CLOSED, shift), True, MESH_COLOUR, thick, cv2.LINE_AA, shift)
        cv2.polylines(out, _points(lm, OPEN, shift), False, MESH_COLOUR, thick, cv2.LINE_AA, shift)
        if face.iris is not None and face.iris_radius is not None:
            for centre, radius in zip(face.iris[:, 0], face.iris_radius, strict=True):
                c = tuple(int(v) for v in np.round(centre * (1 << shift)))
                r = round(float(radius) * (1 << shift))
                cv2.circle(out, c, r, IRIS_COLOUR, thick, cv2.LINE_AA, shift)
        x0, y0, x1, y1 = (round(v) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOUR, thick, cv2.LINE_AA)
        cv2.putText(
            out,
            f"{face.id}",
            (x0 + 2 * thick, max(0, y0 - 4 * thick)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * thick,
            BOX_COLOUR,
            thick,
            cv2.LINE_AA,
        )
        if face.pose is not None:
            origin = canonical_face()[NOSE_TIP]
            # The head's right (image right when frontal), up and forward (out of the
            # nose): the axes a person reads a head pose by.
            ends = origin + AXIS_CM * np.diag([1.0, -1.0, -1.0])
            uv = face.pose.project(np.vstack([origin, ends]))
            if np.all(np.isfinite(uv)) and np.abs(uv).max() < 1e5:
                o = tuple(int(v) for v in np.round(uv[0]))
                for end, colour in zip(uv[1:], AXIS_COLOURS, strict=True):
                    e = tuple(int(v) for v in np.round(end))
                    cv2.line(out, o, e, colour, thick + 1, cv2.LINE_AA)
    return out
