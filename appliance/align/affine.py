"""2x3 affine maps between pixel grids, and faces carried through them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

DOUBLE = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]])  # x2 upscale, pixel centres kept


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine."""
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The 2x3 affine that applies ``first``, then ``second``."""
    return (np.vstack([second, [0.0, 0.0, 1.0]]) @ np.vstack([first, [0.0, 0.0, 1.0]]))[:2]


def scale_of(m: np.ndarray) -> float:
    """How much ``m`` scales lengths (the square root of its area factor)."""
    return math.sqrt(abs(np.linalg.det(m[:, :2])))


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2+) points through the 2x3 affine; extra columns (depth) are scaled along."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., :2] = points[..., :2] @ m[:, :2].T + m[:, 2]
    if out.shape[-1] > 2:  # mesh depth is in the same px units as x: it scales with them
        out[..., 2:] *= scale_of(m)
    return out


def finite_box(points: np.ndarray) -> tuple[float, float, float, float] | None:
    """x0, y0, x1, y1 around the finite (N, 2+) points; None when there are none."""
    xy = np.asarray(points)[:, :2]
    finite = xy[np.isfinite(xy).all(axis=1)]
    if not len(finite):
        return None
    (x0, y0), (x1, y1) = finite.min(axis=0), finite.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def map_face(face: Any, m: np.ndarray) -> Any:
    """The face with its image-space fields mapped through ``m``; others kept as is."""
    if not dataclasses.is_dataclass(face) or isinstance(face, type):
        return face
    lm = np.asarray(getattr(face, "landmarks", None), dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] < 2:
        return face
    landmarks = apply(m, lm).astype(np.float32)
    box = finite_box(landmarks) or getattr(face, "box", None)
    changes: dict[str, Any] = {"landmarks": landmarks, "box": box}
    iris, radius = getattr(face, "iris", None), getattr(face, "iris_radius", None)
    if iris is not None:
        changes["iris"] = apply(m, np.asarray(iris, dtype=np.float64)).astype(np.float32)
    if radius is not None:
        changes["iris_radius"] = np.asarray(radius) * scale_of(m)
    return dataclasses.replace(face, **changes)
