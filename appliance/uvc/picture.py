"""The processed frame as the host negotiated it: its size, the picture controls, and
MJPEG or YUYV bytes.

The host's picture controls (brightness, contrast, saturation, sharpness) act on what
the host receives only, never on the preview or on the networks' input: they are the
user's taste for this call, applied last.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

JPEG_QUALITY = 85
MIN_JPEG_QUALITY = 30


@dataclass(frozen=True)
class Adjust:
    """UVC control values: brightness -64..64 (0 neutral), contrast and saturation
    0..100 (50 neutral), sharpness 0..100 (0: none)."""

    brightness: int = 0
    contrast: int = 50
    saturation: int = 50
    sharpness: int = 0

    @property
    def neutral(self) -> bool:
        return self == Adjust()


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover ``width`` x ``height`` and crop the centre: no bars, no stretch."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    shrink = scale < 1
    scaled = cv2.resize(
        image, (sw, sh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return scaled[y0 : y0 + height, x0 : x0 + width]


def adjust(image: np.ndarray, a: Adjust) -> np.ndarray:
    if a.neutral:
        return image
    out = image
    if a.contrast != 50 or a.brightness != 0:
        gain = a.contrast / 50.0
        lut = np.clip((np.arange(256) - 128.0) * gain + 128.0 + a.brightness * 2.0, 0, 255)
        out = cv2.LUT(out, lut.astype(np.uint8))
    if a.saturation != 50:
        grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        out = cv2.addWeighted(out, a.saturation / 50.0, grey, 1.0 - a.saturation / 50.0, 0)
    if a.sharpness:
        blurred = cv2.GaussianBlur(out, (0, 0), 1.2)
        amount = a.sharpness / 50.0
        out = cv2.addWeighted(out, 1.0 + amount, blurred, -amount, 0)
    return out


def encode(image: np.ndarray, fourcc: str, max_bytes: int) -> bytes:
    """BGR -> the wire format. MJPEG lowers its quality until the frame fits
    ``max_bytes`` (dwMaxVideoFrameSize: the host's buffers are that big)."""
    if fourcc == "YUYV":
        return cv2.cvtColor(image, cv2.COLOR_BGR2YUV_YUY2).tobytes()
    if fourcc != "MJPG":
        raise ValueError(f"unsupported format {fourcc}")
    quality = JPEG_QUALITY
    while True:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        if len(data) <= max_bytes or quality <= MIN_JPEG_QUALITY:
            return data.tobytes()  # still too big: the streamer drops it and counts it
        quality -= 15


def render(
    image: np.ndarray, fourcc: str, width: int, height: int, max_bytes: int, a: Adjust
) -> bytes:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return encode(adjust(fit(image, width, height), a), fourcc, max_bytes)
