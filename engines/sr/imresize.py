"""MATLAB's ``imresize`` (bicubic, antialiased) and ``rgb2ycbcr``, for the standard protocol.

Published super-resolution tables make the low-resolution image with MATLAB's bicubic
downscaling, which low-pass filters (the kernel is stretched by 1/scale) unlike OpenCV's
``INTER_CUBIC``; figures made with another resize are not comparable (often ~0.3 dB off).
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return near + far


def _contributions(
    in_len: int, out_len: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(weights, source indices), each (out_len, taps), MATLAB's symmetric padding."""
    width = 4.0
    stretch = scale < 1.0 and antialias
    if stretch:
        width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    index = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - index
    weights = scale * _cubic(scale * distance) if stretch else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    index = mirror[np.mod(index - 1, mirror.size).astype(np.int64)]
    keep = np.any(weights != 0.0, axis=0)
    return weights[:, keep], index[:, keep]


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` (H, W[, C]) resized by ``scale`` as MATLAB does; float64 out, unrounded."""
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):  # MATLAB resizes the rows first when both scales are equal
        in_len = out.shape[axis]
        out_len = math.ceil(in_len * scale)
        weights, index = _contributions(in_len, out_len, scale)
        moved = np.moveaxis(out, axis, 0)
        gathered = moved[index]  # (out_len, taps, ...)
        shape = weights.shape + (1,) * (moved.ndim - 1)
        out = np.moveaxis((gathered * weights.reshape(shape)).sum(axis=1), 0, axis)
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 (or 0..255 float) image, MATLAB ``rgb2ycbcr``'s Y
    (16..235), float64 unrounded."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def bgr_to_y(bgr: np.ndarray) -> np.ndarray:
    return rgb_to_y(np.asarray(bgr)[..., ::-1])
