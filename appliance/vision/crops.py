"""Model-sized crops from full frames, the way MediaPipe's graphs cut them.

Shared by the tracker and by the model recipes (``engines/``), so the networks see in
the daemon exactly what their accuracy gates were measured on.
"""

from __future__ import annotations

import cv2
import numpy as np


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Fit into size x size keeping aspect ratio, zero padding; returns (img, scale, dx, dy)."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = round(w * scale), round(h * scale)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    out = np.zeros((size, size, 3), np.uint8)
    out[dy : dy + nh, dx : dx + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, scale, float(dx), float(dy)


def rotated_crop(
    rgb: np.ndarray, centre: np.ndarray, side: float, theta: float, out: int
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of ``side`` px around ``centre``, rotated by -theta so a line at angle
    theta becomes horizontal; returns (crop, 2x3 matrix frame -> crop)."""
    s = out / side
    c, n = np.cos(theta) * s, np.sin(theta) * s
    m = np.array([[c, n, 0.0], [-n, c, 0.0]])
    m[:, 2] = out / 2.0 - m[:, :2] @ centre
    crop = cv2.warpAffine(
        rgb, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop, m
