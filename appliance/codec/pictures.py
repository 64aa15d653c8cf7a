"""The pictures a call sends: references (whole frames) and region residuals.

References are AV1 key frames (SVT-AV1 to code, dav1d to decode, both in PyAV's bundled
FFmpeg): at the qualities a call uses they take 40-60% of WebP's bytes for the same face
MS-SSIM (512x512 talking head: 1.9 KB at 0.984 against WebP's 3.0 KB at 0.985), and the
reference is most of a short call's bits. Residuals stay WebP: they are small crops
(a mouth is about 80x50 px) where AV1's fixed costs eat its advantage, and OpenCV codes
them on every platform. A sender without PyAV falls back to WebP references (probed once,
``reference_codecs``); a receiver without it rejects AV1 pictures as undecodable.

Decoding is bit-exact by the codecs' specifications, so the sender renders from exactly
the pixels the receiver will have.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from appliance.codec.bitstream import BitstreamError, Codec
from appliance.codec.headers import picture_size

AV1_PRESET = 8  # SVT-AV1: 32 ms for 512x512 on one x86 core; 6 saves 13% in 3x the time
AV1_MAX_CRF = 63
_ALIGN = 8  # SVT-AV1 codes sizes in multiples of 8: frames are padded, then cropped
MAX_PIXELS = 4096 * 4096  # an AV1 picture of no stated size


def quality_to_crf(quality: int) -> int:
    """The AV1 quantizer for a 1..100 quality (WebP's scale: higher is better)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must lie in 1..100, got {quality}")
    return round(AV1_MAX_CRF * (100 - quality) / 100)


def encode_picture(picture: np.ndarray, quality: int, codec: Codec = Codec.WEBP) -> bytes:
    """``picture`` (BGR uint8) coded as ``codec`` at ``quality`` (1..100)."""
    if codec == Codec.AV1:
        return _encode_av1(picture, quality_to_crf(quality))
    if codec != Codec.WEBP:
        raise ValueError(f"this sender codes WebP and AV1 pictures, not {codec.name}")
    ok, data = cv2.imencode(".webp", picture, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("WebP encoding failed")
    return data.tobytes()


def decode_picture(codec: Codec, data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR picture of ``size`` (width, height; None: as coded, up to ``MAX_PIXELS``);
    BitstreamError if the data is not one, or not of that size.

    The size the picture declares is checked before any decoder sees it: decoders
    allocate the declared size first, so a forged header would cost gigabytes."""
    _check_declared(codec, picture_size(codec, data), size)
    if codec == Codec.AV1:
        # a picture may not declare more pixels than its header's size padded to 8: a
        # forged 65535x65535 key frame must not make dav1d allocate gigabytes
        # (at least 1: dav1d reads a limit of 0 as none at all)
        limit = max(1, math.prod(_padded(*size))) if size is not None else MAX_PIXELS
        image = _decode_av1(data, limit)
        if size is not None:  # undo the sender's padding to a multiple of 8
            width, height = size
            if image.shape[1] < width or image.shape[0] < height:
                raise BitstreamError("AV1 picture smaller than its header says")
            image = image[:height, :width]
    elif codec in (Codec.JPEG, Codec.WEBP, Codec.PNG):
        try:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:  # OpenCV asserts on an empty buffer instead of returning None
            decoded = None
        if decoded is None:
            raise BitstreamError(f"undecodable {codec.name} picture")
        image = np.asarray(decoded)
    else:
        raise BitstreamError(f"{codec.name} pictures are not decoded by this receiver")
    if size is not None and image.shape[:2] != (size[1], size[0]):
        raise BitstreamError(
            f"{codec.name} picture is {image.shape[1]}x{image.shape[0]}, "
            f"its header says {size[0]}x{size[1]}"
        )
    return np.ascontiguousarray(image)


def _check_declared(codec: Codec, declared: tuple[int, int], size: tuple[int, int] | None) -> None:
    width, height = declared
    if size is None:
        if width * height > MAX_PIXELS:
            raise BitstreamError(f"{codec.name} picture of {width}x{height} is too large")
        return
    # AV1 pictures come padded to a multiple of 8 and are cropped (_padded)
    low, high = (size, _padded(*size)) if codec == Codec.AV1 else (size, size)
    if not (low[0] <= width <= high[0] and low[1] <= height <= high[1]):
        raise BitstreamError(
            f"{codec.name} picture is {width}x{height}, its header says {size[0]}x{size[1]}"
        )


@functools.cache
def reference_codecs() -> tuple[Codec, ...]:
    """The reference codecs this machine can code and decode, best first (probed once:
    a 64x64 picture through each)."""
    found = []
    try:
        probe = np.full((64, 64, 3), 128, np.uint8)
        decode_picture(Codec.AV1, encode_picture(probe, 50, Codec.AV1), (64, 64))
        found.append(Codec.AV1)
    except (ImportError, RuntimeError, BitstreamError, ValueError, OSError):
        pass
    return (*found, Codec.WEBP)


def import_av(purpose: str = "AV1 pictures") -> Any:
    """PyAV, imported on first use (it loads FFmpeg); RuntimeError naming ``purpose`` if
    this installation lacks it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - PyAV is a dependency
        raise RuntimeError(f"PyAV is needed for {purpose}: pip install av") from exc
    return av


def _encode_av1(picture: np.ndarray, crf: int) -> bytes:
    av = import_av()
    height, width = picture.shape[:2]
    coded_width, coded_height = _padded(width, height)
    if (coded_width, coded_height) != (width, height):
        picture = cv2.copyMakeBorder(
            picture, 0, coded_height - height, 0, coded_width - width, cv2.BORDER_REPLICATE
        )
    encoder = av.CodecContext.create("libsvtav1", "w")
    encoder.width, encoder.height = coded_width, coded_height
    encoder.pix_fmt, encoder.time_base = "yuv420p", Fraction(1, 30)
    encoder.thread_count = 1
    encoder.options = {"crf": str(crf), "preset": str(AV1_PRESET), "svtav1-params": "lp=1"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="bgr24")
    frame = frame.reformat(format="yuv420p")
    frame.pts = 0
    with svt_guard():
        packets = list(encoder.encode(frame)) + list(encoder.encode(None))
    if not packets:
        raise RuntimeError("SVT-AV1 gave no packet")
    return b"".join(bytes(p) for p in packets)


def _padded(width: int, height: int) -> tuple[int, int]:
    """The size SVT-AV1 codes a picture at: each side up to a multiple of 8."""
    return width + -width % _ALIGN, height + -height % _ALIGN


def _decode_av1(data: bytes, max_pixels: int) -> np.ndarray:
    av = import_av()
    decoder = av.CodecContext.create("libdav1d", "r")
    decoder.thread_count = 1
    decoder.options = {"max_pixels": str(max_pixels)}  # dav1d's frame_size_limit
    try:
        frames = list(decoder.decode(av.Packet(bytes(data)))) + list(decoder.decode(None))
    except (av.error.FFmpegError, ValueError, OverflowError) as exc:
        raise BitstreamError(f"undecodable AV1 picture: {exc}") from None
    if len(frames) != 1:
        raise BitstreamError(f"an AV1 picture is one frame, this has {len(frames)}")
    return bgr_from_yuv420(frames[0])


# BT.601 limited range (what SVT-AV1 codes and what FFmpeg assumes untagged) in 16.16
# fixed point: Y' = 1.164 (Y - 16); R = Y' + 1.596 V; G = Y' - 0.392 U - 0.813 V;
# B = Y' + 2.017 U (U, V centred on 128).
_Y, _RV, _GU, _GV, _BU = 76309, 104597, 25675, 53279, 132201


def bgr_from_yuv420(frame: Any) -> np.ndarray:
    """A decoded yuv420p frame as BGR, in integer NumPy arithmetic.

    Not FFmpeg's converter: swscale has SIMD paths per CPU (x86 and NEON round
    differently: 48.7 dB apart, max 2 levels), and the spec promises the receiver shows
    exactly the sender's picture, on whatever machine each runs. AV1 decoding itself is
    bit-exact by the standard; this keeps the picture so up to the pixels.
    """
    if frame.format.name != "yuv420p":  # 8-bit 4:2:0 is all a sender makes
        raise BitstreamError(f"a {frame.format.name} picture; only yuv420p is decoded")
    width, height = frame.width, frame.height
    chroma = ((width + 1) // 2, (height + 1) // 2)
    planes = []
    for plane, (w, h) in zip(frame.planes, ((width, height), chroma, chroma), strict=True):
        rows = np.frombuffer(memoryview(plane), np.uint8)[: plane.line_size * h]
        planes.append(rows.reshape(h, plane.line_size)[:, :w].astype(np.int32))
    y, u, v = planes
    u = np.repeat(np.repeat(u, 2, axis=0), 2, axis=1)[:height, :width] - 128
    v = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:height, :width] - 128
    luma = (y - 16) * _Y + (1 << 15)
    bgr = np.empty((height, width, 3), np.uint8)
    bgr[..., 0] = np.clip((luma + _BU * u) >> 16, 0, 255)
    bgr[..., 1] = np.clip((luma - _GU * u - _GV * v) >> 16, 0, 255)
    bgr[..., 2] = np.clip((luma + _RV * v) >> 16, 0, 255)
    return bgr


@contextlib.contextmanager
def svt_guard() -> Iterator[None]:
    """Around any SVT-AV1 use. SVT-AV1 prints a banner per encoder to file descriptor 2
    (journald would get it for every reference) unless SVT_LOG says otherwise, and, run
    as root, makes the calling thread SCHED_FIFO 99, which would starve the daemon's
    other threads and every process started afterwards: both undone."""
    os.environ.setdefault("SVT_LOG", "1")  # errors only
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)
