"""The receiver's motion field: a triangle mesh over the face, moved by the keypoints.

Points: the 468 decoded landmarks (the irises are moved afterwards, by the renderer: a
mesh that stretches the iris between the lids distorts it), plus scaffolding that decides
what moves with them:

- a **head ring** (the face oval pushed out by ``HEAD_RING``): hair, ears and forehead
  follow the head's 2-D similarity (fitted on the rigid landmarks), so they do not smear
  when the head moves (a complaint users make of keypoint codecs);
- a **background ring** (pushed out by ``BACKGROUND_RING``) and the frame border: fixed,
  so the room stays still; only the band between the rings stretches.

The triangulation (Delaunay) is made once per reference picture, on its own landmarks,
and kept for every frame rendered from it. A frame's backward map is piecewise affine:
each target triangle maps to its reference triangle. Triangles are rasterized far to near
(the decoded landmarks have depth), so when the head turns the nose covers the cheek
instead of the other way round: painter's algorithm, no z-buffer.

The map is evaluated on a grid of ``step`` px and resized bilinearly: exact inside every
triangle larger than the grid (an affine map is linear) and continuous across edges, at a
sixteenth of the per-pixel work for ``step`` 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay  # the field's standard; scikit-image needs it too

from appliance.vision.overlay import FACE_OVAL
from appliance.vision.pose import rigid_points

POINTS = 468
HEAD_RING = 1.3
BACKGROUND_RING = 2.0
BORDER_CELLS = 8  # border points per frame side
BEHIND = 1e9  # the scaffold's depth: behind the face, so drawn first
SUBPIXEL = 4  # fillConvexPoly shift: vertex positions to 1/16 px
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), frame px


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity taking ``source`` (n, 2) to ``target`` (n, 2)."""
    s_mean, t_mean = source.mean(axis=0), target.mean(axis=0)
    s, t = source - s_mean, target - t_mean
    denom = float(np.sum(s * s)) or 1.0
    a = float(np.sum(s * t)) / denom
    b = float(np.sum(s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0])) / denom
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (t_mean - linear @ s_mean)[:, None]])


def _ring(landmarks: np.ndarray, factor: float) -> np.ndarray:
    oval = landmarks[list(FACE_OVAL), :2]
    centre = oval.mean(axis=0)
    return centre + (oval - centre) * factor


def _border(width: int, height: int) -> np.ndarray:
    xs = np.linspace(0, width - 1, BORDER_CELLS + 1)
    ys = np.linspace(0, height - 1, BORDER_CELLS + 1)
    top = [(x, 0.0) for x in xs] + [(x, height - 1.0) for x in xs]
    sides = [(0.0, y) for y in ys[1:-1]] + [(width - 1.0, y) for y in ys[1:-1]]
    return np.array(top + sides, np.float64)


@dataclass(frozen=True)
class Scaffold:
    head: np.ndarray  # (r, 2) reference head ring
    fixed: np.ndarray  # (f, 2) background ring points inside the frame + frame border


class Mesh:
    """Triangles over a reference's landmarks and scaffold; maps frames back onto it."""

    def __init__(self, reference: np.ndarray, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)
        ref = np.asarray(reference, np.float64)[:POINTS]
        self.reference = ref
        head = _ring(ref, HEAD_RING)
        ring = _ring(ref, BACKGROUND_RING)
        margin = 2.0
        inside = (
            (ring[:, 0] > margin)
            & (ring[:, 0] < width - 1 - margin)
            & (ring[:, 1] > margin)
            & (ring[:, 1] < height - 1 - margin)
        )
        self.scaffold = Scaffold(head, np.vstack([ring[inside], _border(width, height)]))
        self.source = np.vstack([ref[:, :2], head, self.scaffold.fixed])
        self.triangles = Delaunay(self.source).simplices.astype(np.int64)
        self._rigid = rigid_points()

    def target(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target vertex positions (P, 2) and depths (P,) for a frame's landmarks (468+, 3)."""
        points = np.asarray(landmarks, np.float64)[:POINTS]
        motion = similarity(self.reference[self._rigid, :2], points[self._rigid, :2])
        head = self.scaffold.head @ motion[:, :2].T + motion[:, 2]
        xy = np.vstack([points[:, :2], head, self.scaffold.fixed])
        depth = np.full(len(xy), BEHIND)
        if points.shape[1] > 2:
            depth[: len(points)] = points[:, 2]
        return xy, depth

    def backward_map(
        self,
        target: np.ndarray,
        depth: np.ndarray,
        source: np.ndarray | None = None,
        box: Box | None = None,
        step: int = 4,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(map_x, map_y) float32 over ``box`` (default the frame): for each target pixel,
        where to read the source picture (whose vertices are ``source``, default the
        reference's)."""
        src = self.source if source is None else source
        x0, y0, x1, y1 = box or (0, 0, self.width, self.height)
        # one node beyond each side, so that every pixel lies between two nodes
        gw, gh = -(-(x1 - x0) // step) + 2, -(-(y1 - y0) // step) + 2
        # node (u, v) samples the frame at x0 + (u - 1) * step plus the resize's half-pixel
        # offset, so that cv2.resize's pixel centres line up with the nodes
        offset = (step - 1) / 2.0 - step
        origin = np.array([x0 + offset, y0 + offset])
        tri_t = target[self.triangles]  # (T, 3, 2)
        affines, ok = _affines(tri_t, src[self.triangles])
        order = np.argsort(-depth[self.triangles].mean(axis=1), kind="stable")
        lo, hi = tri_t.min(axis=1), tri_t.max(axis=1)
        visible = ok & (hi[:, 0] >= x0) & (lo[:, 0] < x1) & (hi[:, 1] >= y0) & (lo[:, 1] < y1)
        ids = np.full((gh, gw), -1, np.int32)
        fixed = np.rint((tri_t - origin) / step * (1 << SUBPIXEL)).astype(np.int32)
        for t in order[visible[order]]:
            cv2.fillConvexPoly(ids, fixed[t], int(t), cv2.LINE_8, SUBPIXEL)
        us = origin[0] + step * np.arange(gw)
        vs = origin[1] + step * np.arange(gh)
        gx, gy = np.meshgrid(us, vs)
        a = affines[np.maximum(ids, 0)]  # (gh, gw, 3, 2)
        map_x = gx * a[..., 0, 0] + gy * a[..., 1, 0] + a[..., 2, 0]
        map_y = gx * a[..., 0, 1] + gy * a[..., 1, 1] + a[..., 2, 1]
        uncovered = ids < 0  # outside every triangle: read the same place
        map_x[uncovered], map_y[uncovered] = gx[uncovered], gy[uncovered]
        size = (x1 - x0, y1 - y0)
        grid = (gw * step, gh * step)
        full_x = cv2.resize(map_x.astype(np.float32), grid, interpolation=cv2.INTER_LINEAR)
        full_y = cv2.resize(map_y.astype(np.float32), grid, interpolation=cv2.INTER_LINEAR)
        rows, cols = slice(step, step + size[1]), slice(step, step + size[0])
        return full_x[rows, cols], full_y[rows, cols]


def _affines(target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 2) matrices A with [x, y, 1] @ A = source point, and which are usable."""
    ones = np.ones((*target.shape[:2], 1))
    t = np.concatenate([target, ones], axis=2)  # (T, 3, 3)
    det = np.linalg.det(t)
    ok = np.abs(det) > 1e-6
    t[~ok] = np.eye(3)
    return np.linalg.solve(t, source), ok
