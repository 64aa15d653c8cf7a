"""Synthetic faces for the framing tests: the canonical mesh, placed, sized and rolled."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from appliance.align.stage import AlignStage
from appliance.frame import Frame
from appliance.vision.pose import canonical_face
from appliance.vision.stage import Face

# Image axes (y down), centred on the box centre, unit forehead(10)-to-chin(152) height.
_TEMPLATE = canonical_face() * np.array([1.0, -1.0, 1.0])
_TEMPLATE = _TEMPLATE - (_TEMPLATE.min(axis=0) + _TEMPLATE.max(axis=0)) / 2
_TEMPLATE = _TEMPLATE / float(np.hypot(*(_TEMPLATE[152, :2] - _TEMPLATE[10, :2])))


def fake_face(
    cx: float,
    cy: float,
    height: float,
    roll_deg: float = 0.0,
    face_id: int = 0,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Face:
    """A mesh of ``height`` px (forehead to chin) centred at (cx, cy), rolled
    counter-clockwise (as seen) by ``roll_deg``, with Gaussian landmark noise (px)."""
    r = math.radians(roll_deg)
    rot = np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    pts = _TEMPLATE * height
    pts[:, :2] = pts[:, :2] @ rot.T + (cx, cy)
    if noise:
        pts[:, :2] += (rng or np.random.default_rng(0)).normal(0.0, noise, size=(468, 2))
    pts = pts.astype(np.float32)
    (x0, y0), (x1, y1) = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
    box = (float(x0), float(y0), float(x1), float(y1))
    return Face(id=face_id, box=box, score=1.0, landmarks=pts)


def run(
    stage: AlignStage,
    faces_at: Callable[[float], Sequence[Face]],
    seconds: float,
    fps: float = 30.0,
    size: tuple[int, int] = (1280, 720),
    t0: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, list[Frame]]:
    """Feed blank frames with ``faces_at(t)``; (times, crops (N, 4), frames)."""
    image = np.zeros((size[1], size[0], 3), np.uint8)
    times, crops, frames = [], [], []
    for i in range(round(seconds * fps)):
        t = t0 + i / fps
        frame = stage.process(Frame(image, i, t_capture=t, meta={"faces": list(faces_at(t))}))
        times.append(t)
        crops.append(frame.meta["framing"]["crop"])
        frames.append(frame)
    return np.array(times), np.array(crops, dtype=np.float64), frames


def inside(crop: Sequence[float], size: tuple[int, int], tol: float = 1e-6) -> bool:
    x0, y0, x1, y1 = crop
    return bool(x0 >= -tol and y0 >= -tol and x1 <= size[0] + tol and y1 <= size[1] + tol)
