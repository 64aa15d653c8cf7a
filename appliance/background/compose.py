"""What goes behind the person, and the blend.

**Blur** is a Gaussian of standard deviation ``blur * height`` (as CSS ``blur()``
reads its radius). A wide Gaussian on 1280x720 costs tens of milliseconds; the same
blur on the work picture halved until the kernel is 2.5-5 px there, then upscaled
bilinearly, costs well under one and matches a full-size Gaussian of the room within
half a grey level on average: the result has no detail the small picture could not hold.

The blur must not smear the person into the background around them (a bright halo
where the face was). So the background is blurred *premultiplied*: ``blur(I * w) /
blur(w)`` with ``w`` the background weight (1 - matte, eroded by one small pixel so the
person's soft rim does not count), which fills the person's place with the colours
around it. Where nothing around is background (deep inside a close-up person) the plain
blur stands in, through a small ``EPS``.

**Replace** draws a picture (read once, scaled to cover the frame and centre-cropped,
cached per frame size) or a solid colour.

**Blend**: ``frame * a + background * (1 - a)`` in uint8 with OpenCV's saturating
multiply and add: ~1 ms at 1280x720, a third of ``cv2.blendLinear``'s float blend, and
exact where the matte is 0 or 255.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from appliance.background.frames import BackgroundError, reduce

SMALL_SIGMA = 2.5  # px: the Gaussian's size on the picture it actually runs on
EPS = 1e-2  # weight of the plain blur where no background is near
MAX_FILE_BYTES = 64 << 20  # a replacement picture larger than this is refused
MAX_SIDE = 4096  # px: larger pictures are shrunk once when read (memory; 4K frames still sharp)
_KERNEL = np.ones((3, 3), np.uint8)


def blurred_background(
    work: np.ndarray, matte: np.ndarray, sigma: float, width: int, height: int
) -> np.ndarray:
    """The blurred background at the frame size; ``sigma`` in work-picture px."""
    small, a = work, matte
    factor = 1
    # Halve (a fast 2x2 average) while the Gaussian stays wider than 2 * SMALL_SIGMA there;
    # at least once, since a narrow blur at full work size costs ~10 ms, and the round trip
    # adds barely a pixel of blur.
    while min(small.shape[:2]) >= 16 and (factor == 1 or sigma / factor >= 2 * SMALL_SIGMA):
        small, a = reduce(small, 2), reduce(a, 2)
        factor *= 2
    s = max(sigma / factor, 0.5)
    image = small.astype(np.float32)
    weight = cv2.erode(np.float32(1.0) - a.astype(np.float32) * np.float32(1.0 / 255.0), _KERNEL)
    plain = cv2.GaussianBlur(image, (0, 0), s)
    premul = cv2.GaussianBlur(image * weight[..., None], (0, 0), s)
    norm = cv2.GaussianBlur(weight, (0, 0), s)
    eps = np.float32(EPS)
    back = (premul + eps * plain) / (norm + eps)[..., None]
    back8 = cv2.convertScaleAbs(back)  # rounds and saturates; the values are >= 0
    return cv2.resize(back8, (width, height), interpolation=cv2.INTER_LINEAR)


def parse_color(text: str) -> tuple[int, int, int]:
    """``#rrggbb`` as an OpenCV BGR triple."""
    value = text.strip().lstrip("#")
    if len(value) != 6:
        raise BackgroundError(f"background.color: expected #rrggbb, got {text!r}")
    try:
        r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise BackgroundError(f"background.color: expected #rrggbb, got {text!r}") from None
    return b, g, r


def read_picture(path: str) -> np.ndarray:
    """The replacement picture as BGR uint8; BackgroundError saying why it cannot be."""
    file = Path(path).expanduser()
    if not file.exists():
        raise BackgroundError(f"cannot read {path!r}: no such file")
    if not file.is_file():
        raise BackgroundError(f"cannot read {path!r}: not a file")
    if not os.access(file, os.R_OK):
        raise BackgroundError(f"cannot read {path!r}: permission denied")
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise BackgroundError(
            f"cannot read {path!r}: {size >> 20} MiB, over {MAX_FILE_BYTES >> 20}"
        )
    # imdecode on the bytes rather than imread: the same across OpenCV builds, and it
    # never prints warnings of its own.
    data = np.fromfile(file, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise BackgroundError(f"cannot read {path!r}: not a picture OpenCV can decode")
    h, w = image.shape[:2]
    if h < 2 or w < 2:
        raise BackgroundError(f"cannot read {path!r}: {w}x{h} px")
    if max(h, w) > MAX_SIDE:
        s = MAX_SIDE / max(h, w)
        size_px = (max(2, round(w * s)), max(2, round(h * s)))
        image = cv2.resize(image, size_px, interpolation=cv2.INTER_AREA)
    return image


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to cover ``width`` x ``height`` (aspect kept), centre-cropped."""
    h, w = image.shape[:2]
    s = max(width / w, height / h)
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    shrink = nw < w
    scaled = cv2.resize(
        image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


class Backdrop:
    """The replacement picture, read once, and its cover-cropped copies per frame size."""

    def __init__(self) -> None:
        self.path = ""
        self.picture: np.ndarray | None = None
        self._sized: dict[tuple[int, int], np.ndarray] = {}
        self._fills: dict[tuple[int, int, tuple[int, int, int]], np.ndarray] = {}

    def use(self, path: str, picture: np.ndarray | None) -> None:
        self.path, self.picture = path, picture
        self._sized.clear()

    def image(self, width: int, height: int) -> np.ndarray | None:
        """The picture at the frame size, or None without one."""
        if self.picture is None:
            return None
        key = (width, height)
        if key not in self._sized:
            if len(self._sized) > 4:  # the frame size seldom changes: drop the old ones
                self._sized.clear()
            self._sized[key] = cover(self.picture, width, height)
        return self._sized[key]

    def fill(self, width: int, height: int, bgr: tuple[int, int, int]) -> np.ndarray:
        """A solid-colour picture at the frame size (cached: allocating costs per frame)."""
        key = (width, height, bgr)
        if key not in self._fills:
            if len(self._fills) > 4:
                self._fills.clear()
            self._fills[key] = np.full((height, width, 3), bgr, np.uint8)
        return self._fills[key]


def blend(front: np.ndarray, back: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """``front * a + back * (1 - a)`` with ``a = matte / 255``; all uint8, same size."""
    a = cv2.merge((matte, matte, matte))
    out = cv2.multiply(front, a, scale=1.0 / 255.0)
    cv2.add(out, cv2.multiply(back, cv2.bitwise_not(a), scale=1.0 / 255.0), dst=out)
    return out
