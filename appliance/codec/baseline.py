"""Conventional video codecs at low bitrates: the reference the keypoint codec is measured against.

``encode_decode`` runs a clip through x264 (H.264), libvpx (VP8) or SVT-AV1 via PyAV at the
clip's own frame rate and returns each frame's coded size and the decoded pictures, so the
keypoint codec's rate-distortion points can be set beside them at equal kbit/s.

The settings are those of a real-time video call, not of file encoding:

- **No latency.** No B-frames, no lookahead, no frame reordering (x264 ``tune=zerolatency``,
  ``bframes=0``; VP8 ``lag-in-frames=0`` without alt-ref frames, ``deadline=realtime``;
  SVT-AV1 ``rtc=1`` with the low-delay prediction structure ``pred-struct=1``). Each input
  frame gives one packet, right away, as a call's sender must.
- **One keyframe, then a long GOP** (``keyint`` = 10 s of frames, no scene-cut keyframes).
  A call sends a keyframe at the start and then only when the receiver reports a loss;
  periodic keyframes would dominate the bits at these rates (a 512x512 keyframe is 1.3 to
  2.8 KB with x264, i.e. 11 to 22 kbit, about a whole second of a 20 kbit/s budget).
- **One-pass target-bitrate rate control** with a rate buffer (VBV) of about 1 s: what a
  call's encoder runs, fed by the congestion controller's target. x264 is capped at the
  target (``vbv-maxrate`` = bitrate, ``vbv-bufsize`` = 1 s), VP8 runs its CBR mode with a
  1 s buffer and the full quantizer range (``qmax=63``), SVT-AV1 its CBR mode (``rc=2``,
  the only one it allows with low delay) with a 1 s buffer. No frame is ever dropped:
  every input frame is coded and decoded once.
- **Speed presets**: x264 ``veryfast`` (``medium`` and ``slow`` measured no better on the
  talking-head clips: within 0.3 dB at 50 and 100 kbit/s, up to 1 dB worse at 20, and
  slower), VP8 ``cpu-used=6`` (WebRTC's desktop choice; the low-rate floor below is the
  same at 0 to 8), SVT-AV1 preset 10 in its real-time mode (preset 8: +0.3 dB for 1.3x
  the time). One thread each, encoder and decoder: the bits do not depend on the machine
  (x264's sliced threads change the bitstream with the thread count) and the times are
  per core, comparable with the keypoint codec's (a second thread made libvpx 8x slower on
  a loaded 2-core machine).

Measured behaviour to know when reading the figures: on a 512x512 talking head VP8's
real-time mode cannot go below 85 to 135 kbit/s (by clip, at 25 fps): at the coarsest
quantizer every one of its 1024 macroblocks still costs its mode bits, where a call would
drop frames or scale the picture down. SVT-AV1 overshoots low targets (33 kbit/s for 20 on
a 3 s clip, 22 on a 9 s one), and x264's rate control undershoots in the first seconds (28
kbit/s for 50 on a 3 s clip, 50 on a 9 s one). Always compare at the *actual* rate
(``BaselineResult.kbps``), not the target.

Per-frame bytes are the sizes of the packets each frame produced, attributed by the
packet's presentation timestamp (the frame's index), or in output order where an encoder
gives none; without B-frames output order is input order, and the sum (hence kbit/s) is
exact either way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.codec.pictures import import_av, svt_guard

if TYPE_CHECKING:
    import av as _av

CODECS = ("x264", "vp8", "av1")

_ENCODER = {"x264": "libx264", "vp8": "libvpx", "av1": "libsvtav1"}
# Decoders, first available wins ("av1" alone is FFmpeg's hardware-only AV1 decoder).
_DECODERS = {"x264": ("h264",), "vp8": ("vp8", "libvpx"), "av1": ("libdav1d", "libaom-av1")}

KEYFRAME_SECONDS = 10.0
BUFFER_SECONDS = 1.0


@dataclass(frozen=True)
class BaselineResult:
    """One clip through one codec at one target rate."""

    codec: str
    kbps_target: float
    fps: float
    frame_bytes: list[int]
    decoded: list[np.ndarray]

    @property
    def mean_bytes(self) -> float:
        return sum(self.frame_bytes) / len(self.frame_bytes)

    @property
    def kbps(self) -> float:
        """The actual rate, kbit/s."""
        return sum(self.frame_bytes) * 8 * self.fps / len(self.frame_bytes) / 1000


def _decoder(av: Any, codec: str) -> _av.VideoCodecContext | None:
    for name in _DECODERS[codec]:
        try:
            ctx = av.CodecContext.create(name, "r")
            ctx.thread_count = 1
            return ctx
        except ValueError:  # av.codec.codec.UnknownCodecError
            continue
    return None


def available() -> dict[str, bool]:
    """Which of ``CODECS`` this PyAV build can both encode and decode."""
    av = import_av("the baseline codecs")
    out = {}
    for codec in CODECS:
        try:
            av.CodecContext.create(_ENCODER[codec], "w")
        except ValueError:
            out[codec] = False
            continue
        out[codec] = _decoder(av, codec) is not None
    return out


def _encoder(
    av: Any, codec: str, width: int, height: int, rate: Fraction, kbps: float
) -> _av.VideoCodecContext:
    ctx = av.CodecContext.create(_ENCODER[codec], "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = 1 / rate, rate
    bits = max(1, round(kbps * 1000))
    keyint = max(1, round(KEYFRAME_SECONDS * float(rate)))
    ctx.bit_rate, ctx.gop_size, ctx.thread_count = bits, keyint, 1
    buffer = {"bufsize": str(max(1, round(bits * BUFFER_SECONDS)))}
    if codec == "x264":
        ctx.options = {
            **buffer,
            "maxrate": str(bits),
            "preset": "veryfast",
            "tune": "zerolatency",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0",
        }
    elif codec == "vp8":
        ctx.options = {
            **buffer,
            "minrate": str(bits),  # min = max = target: libvpx's CBR mode
            "maxrate": str(bits),
            "qmax": "63",
            "deadline": "realtime",
            "cpu-used": "6",
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
            "error-resilient": "1",
            "drop-threshold": "0",
        }
    else:  # av1; no maxrate: SVT-AV1 takes it only with lookahead (TPL)
        ctx.options = {
            **buffer,
            "preset": "10",
            "svtav1-params": f"rtc=1:pred-struct=1:rc=2:keyint={keyint}:scd=0",
        }
    return ctx


def _check(frames: Sequence[np.ndarray], fps: float, codec: str, kbps: float) -> None:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")
    if not fps > 0 or not np.isfinite(fps):
        raise ValueError(f"fps must be positive, got {fps}")
    if not kbps > 0 or not np.isfinite(kbps):
        raise ValueError(f"kbps must be positive, got {kbps}")
    if len(frames) == 0:
        raise ValueError("no frames to encode")
    shape = frames[0].shape
    if len(shape) != 3 or shape[2] != 3 or shape[0] % 2 or shape[1] % 2:
        raise ValueError(f"frames must be BGR (H, W, 3) with even H and W, got {shape}")
    for i, frame in enumerate(frames):
        if frame.shape != shape or frame.dtype != np.uint8:
            raise ValueError(f"frame {i} is {frame.shape} {frame.dtype}; all must be {shape} uint8")


def encode_decode(
    frames: Sequence[np.ndarray], fps: float, codec: str, kbps: float
) -> BaselineResult:
    """Encode BGR uint8 frames with ``codec`` at a target ``kbps`` and decode them again."""
    _check(frames, fps, codec, kbps)
    # libvpx and x264 print to file descriptor 2 too; svt_guard puts SVT-AV1's real-time
    # scheduling back (a VM or broker started afterwards would inherit it)
    with _quiet_stderr(), svt_guard():
        return _encode_decode(frames, fps, codec, kbps)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _encode_decode(
    frames: Sequence[np.ndarray], fps: float, codec: str, kbps: float
) -> BaselineResult:
    av = import_av("the baseline codecs")
    height, width = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    encoder = _encoder(av, codec, width, height, rate, kbps)
    decoder = _decoder(av, codec)
    if decoder is None:
        raise RuntimeError(f"this PyAV build has no decoder for {codec}")
    frame_bytes = [0] * len(frames)
    decoded: list[np.ndarray] = []
    order = 0  # output-order index, for packets without a timestamp

    def take(packets: Sequence[_av.Packet]) -> None:
        nonlocal order
        for packet in packets:
            index = packet.pts if packet.pts is not None else order
            frame_bytes[min(max(index, 0), len(frames) - 1)] += packet.size
            order += 1
            pictures = decoder.decode(packet)
            decoded.extend(p.reformat(width, height, "bgr24").to_ndarray() for p in pictures)

    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = i, encoder.time_base
        take(encoder.encode(frame))
    take(encoder.encode(None))
    decoded.extend(p.reformat(width, height, "bgr24").to_ndarray() for p in decoder.decode(None))
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec}: {len(frames)} frames in, {len(decoded)} decoded")
    return BaselineResult(codec, float(kbps), float(fps), frame_bytes, decoded)
