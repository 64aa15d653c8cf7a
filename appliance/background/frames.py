"""What the background stage accepts, and the reduced picture it works on.

Everything but the final blend runs on a *work* picture: the frame shrunk by an integer
factor to at most ``WORK_HEIGHT`` rows. The model sees 256x256 anyway, the matte is soft
at that scale, and a blurred background has no detail to lose, so full-resolution maths
would only cost time. An integer factor keeps OpenCV's ``INTER_AREA`` on its fast path
(a 1280x720 -> 640x360 reduction takes ~0.2 ms; a fractional one several times more).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

WORK_HEIGHT = 360


class BackgroundError(ValueError):
    """Bad input to the background stage (frame, setting or picture); says what and why."""


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 view or copy of a frame: BGR as is, grey and BGRA converted.

    The pipeline hands over BGR, but a grey sensor or a decoder with alpha must not crash
    the stage; anything else is refused with its dtype and shape.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise BackgroundError(f"background: frame must be a uint8 image, got {_describe(image)}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        bgr = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 3:
        bgr = image
    else:
        raise BackgroundError(
            f"background: frame must be HxW, HxWx1, HxWx3 or HxWx4, got {_describe(image)}"
        )
    if bgr.shape[0] < 2 or bgr.shape[1] < 2:
        raise BackgroundError(f"background: frame too small, got {_describe(image)}")
    return bgr


def _describe(image: object) -> str:
    if isinstance(image, np.ndarray):
        return f"{image.dtype} {tuple(image.shape)}"
    return type(image).__name__


def reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` shrunk by an integer ``factor`` (area average; at least 1x1)."""
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def work_factor(height: int, limit: int = WORK_HEIGHT) -> int:
    """The smallest integer factor that brings ``height`` to ``limit`` rows or fewer."""
    return max(1, math.ceil(height / limit))
