"""One-Euro filter (Casiez, Roussel, Vogel, CHI 2012), vectorised over landmarks.

A low-pass filter whose cutoff rises with speed: at rest it smooths hard (jitter
gone), in motion it opens up (no visible lag). Two choices on top of the paper:

- Scale: the speed that opens the cutoff is measured in face sizes per second (the
  tracker passes its region side with each sample), so ``min_cutoff`` and ``beta``
  mean the same for a face 60 px or 600 px wide. Values are filtered in pixels.
- One cutoff per point, from the point's 2-D speed, applied to all its coordinates: a
  per-coordinate cutoff would smooth x and y of one point differently during motion
  and so bend the mesh.
"""

from __future__ import annotations

import math

import numpy as np

MIN_CUTOFF = 0.5  # Hz at rest
BETA = 40.0  # Hz added per face size (region side) per second of speed
D_CUTOFF = 4.0  # Hz, for the speed estimate itself
DEFAULT_DT = 1.0 / 30.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays of shape (N, D); the first two columns give each point's speed."""

    def __init__(
        self, min_cutoff: float = MIN_CUTOFF, beta: float = BETA, d_cutoff: float = D_CUTOFF
    ) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None  # last filtered value
        self._speed: np.ndarray | None = None  # last filtered speed per point, sizes/s
        self._t = 0.0

    def __call__(self, x: np.ndarray, t: float, scale: float) -> np.ndarray:
        """Filtered ``x`` (same shape and dtype) for a sample at time ``t`` (s) of a face
        ``scale`` px big."""
        if self._x is None or self._speed is None or self._x.shape != x.shape:
            self._x = x.astype(np.float64)
            self._speed = np.zeros(x.shape[0])
            self._t = t
            return x.copy()
        dt = t - self._t
        if not dt > 0.0:  # same or older timestamp (a repeated frame): a nominal step
            dt = DEFAULT_DT
        self._t = t
        value = x.astype(np.float64)
        step = value[:, :2] - self._x[:, :2]
        speed = np.linalg.norm(step, axis=1) / (dt * max(float(scale), 1e-6))
        self._speed += _alpha(self.d_cutoff, dt) * (speed - self._speed)
        a = np.asarray(_alpha(self.min_cutoff + self.beta * self._speed, dt))
        self._x += a.reshape(-1, *([1] * (x.ndim - 1))) * (value - self._x)
        return self._x.astype(x.dtype)
