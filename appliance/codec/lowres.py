"""The hybrid codec's real stream: the whole frame, scaled down, as low-delay AV1.

A keypoint warp cannot show what the reference does not (teeth, a blink, a hand, new
light); a few real pixels can. At these sizes a picture is cheap: a 128x128 SVT-AV1
inter frame costs 20 to 60 bytes, and upscaled it scores a face MS-SSIM that AV1 at the
full size needs about twice the bits for (docs/codec.md, "How the hybrid works").

Rate control is ours, not SVT-AV1's: its CBR mode starves the first key frame at these
sizes (116 bytes for a 96x96 key frame asked for 2 kbit/s, then every frame at the
coarsest quantizer: face MS-SSIM 0.76), so the stream runs at a constant quantizer
(``rc=0``, allowed with the low-delay structure since SVT-AV1 1.x) and the hybrid's
ladder picks size and quantizer from the measured rate-distortion curves. A change of
either starts a new stream with a key frame.

On the wire a frame is its OBUs without the temporal delimiter (2 bytes that say only
"a new frame starts", which the packet already says); the decoder puts it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from appliance.codec.bitstream import BitstreamError, Codec
from appliance.codec.headers import picture_size
from appliance.codec.pictures import bgr_from_yuv420, import_av, svt_guard

TEMPORAL_DELIMITER = b"\x12\x00"  # OBU type 2, has_size_field, size 0
MAX_QP = 63
PRESET = 10  # SVT-AV1's real-time presets; at 128x128 a frame takes about 1.5 ms
MIN_SIDE = 16


def low_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The stream's picture size for a ``width`` x ``height`` frame: the frame's shape
    with about ``side`` x ``side`` pixels (0: the frame's own size), even sides (4:2:0),
    at least ``MIN_SIDE``, never larger than the frame.

    A pixel count rather than a fraction of the frame, so that a rung costs about the
    same bits on a 256x256 crop and on a 640x360 frame (the bits follow the pixels)."""
    if side < 0:
        raise ValueError(f"side must be >= 0, got {side}")
    full = (width // 2 * 2, height // 2 * 2)
    if side == 0:
        return full
    scale = side / math.sqrt(width * height)
    w = max(MIN_SIDE, round(width * scale / 2) * 2)
    h = max(MIN_SIDE, round(height * scale / 2) * 2)
    return min(w, full[0]), min(h, full[1])


@dataclass(frozen=True)
class CodedFrame:
    data: bytes  # OBUs, temporal delimiter removed
    key: bool


class LowResEncoder:
    """Frames of ``size`` (width, height) at constant quantizer ``qp`` (0..63)."""

    def __init__(self, size: tuple[int, int], qp: int, fps: float = 30.0) -> None:
        width, height = size
        if width % 2 or height % 2 or min(width, height) < MIN_SIDE:
            raise ValueError(f"stream size must be even and >= {MIN_SIDE}, got {size}")
        if not 0 <= qp <= MAX_QP:
            raise ValueError(f"qp must lie in 0..{MAX_QP}, got {qp}")
        self.size, self.qp, self.fps = (int(width), int(height)), int(qp), float(fps)
        self._encoder: Any = None
        self._av = import_av("the hybrid codec's stream")
        self._pts = 0

    def _open(self) -> Any:
        encoder = self._av.CodecContext.create("libsvtav1", "w")
        encoder.width, encoder.height = self.size
        encoder.pix_fmt = "yuv420p"
        rate = Fraction(self.fps).limit_denominator(1001)
        encoder.time_base, encoder.framerate = 1 / rate, rate
        encoder.thread_count = 1
        # no scene-cut or periodic key frames: the receiver asks for one when it needs it
        params = f"rtc=1:pred-struct=1:rc=0:qp={self.qp}:keyint=-1:scd=0:lp=1"
        encoder.options = {"preset": str(PRESET), "svtav1-params": params}
        self._pts = 0
        return encoder

    def encode(self, picture: np.ndarray, key: bool = False) -> CodedFrame:
        """One frame (BGR, the stream's size or larger: scaled with INTER_AREA); ``key``
        starts the stream afresh (the receiver lost it, or asked)."""
        if picture.shape[1::-1] != self.size:
            picture = cv2.resize(picture, self.size, interpolation=cv2.INTER_AREA)
        if key or self._encoder is None:
            self.close()
            self._encoder = self._open()
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = self._pts, self._encoder.time_base
        self._pts += 1
        with svt_guard():
            packets = list(self._encoder.encode(frame))
        if len(packets) != 1:  # low delay: one packet per frame, at once
            raise RuntimeError(f"SVT-AV1 gave {len(packets)} packets for one frame")
        packet = packets[0]
        data = bytes(packet)
        if data.startswith(TEMPORAL_DELIMITER):
            data = data[len(TEMPORAL_DELIMITER) :]
        return CodedFrame(data, bool(packet.is_keyframe))

    def close(self) -> None:
        """End the stream (SVT-AV1 wants its end-of-stream before it is freed)."""
        if self._encoder is not None:
            with svt_guard():
                self._encoder.encode(None)
            self._encoder = None


class LowResDecoder:
    """The receiving end of one ``LowResEncoder`` stream. A key frame's declared size is
    read from its sequence header and checked against ``size`` before the decoder sees
    it; a predicted frame decodes only after a key frame of this decoder."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))
        self._av = import_av("the hybrid codec's stream")
        self._decoder: Any = None

    def decode(self, data: bytes, key: bool) -> np.ndarray:
        """The frame's BGR picture at ``size``; BitstreamError for anything else."""
        if key:
            declared = picture_size(Codec.AV1, data)
            if declared != self.size:
                raise BitstreamError(
                    f"stream key frame declares {declared[0]}x{declared[1]}, "
                    f"the stream is {self.size[0]}x{self.size[1]}"
                )
            self._decoder = self._av.CodecContext.create("libdav1d", "r")
            self._decoder.thread_count = 1
            self._decoder.options = {"max_pixels": str(self.size[0] * self.size[1])}
        elif self._decoder is None:
            raise BitstreamError("a predicted frame before any key frame")
        packet = self._av.Packet(TEMPORAL_DELIMITER + bytes(data))
        try:
            frames = list(self._decoder.decode(packet))
        except (self._av.error.FFmpegError, ValueError, OverflowError) as exc:
            self._decoder = None  # its state is unknown: only a key frame restarts it
            raise BitstreamError(f"undecodable stream frame: {exc}") from None
        if len(frames) != 1:
            self._decoder = None
            raise BitstreamError(f"a stream frame is one picture, this gave {len(frames)}")
        picture = bgr_from_yuv420(frames[0])
        if picture.shape[1::-1] != self.size:
            self._decoder = None
            raise BitstreamError(f"stream frame is {picture.shape[1]}x{picture.shape[0]}")
        return picture
