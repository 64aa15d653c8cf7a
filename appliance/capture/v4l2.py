"""USB (UVC) cameras through V4L2: ``v4l2:///dev/videoN``, MJPEG or YUYV, decoded to BGR.

The decoding and mode choice are pure functions, tested without a device; ``V4L2Source``
and ``list_capture_devices`` talk to real nodes through ``appliance.platform.v4l2`` and
are exercised only on hardware (a UVC camera, or vivid in a VM), apart from error paths.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.capture.base import Source, SourceError
from appliance.frame import Frame
from appliance.platform import v4l2
from appliance.platform.v4l2 import FormatInfo

# Pixel formats this module can turn into BGR. Some drivers report MJPEG as "JPEG".
DECODABLE = ("MJPG", "JPEG", "YUYV")

# ---------------------------------------------------------------- MJPEG

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_DHT, _SOS = 0xC4, 0xDA
# Bytes a driver may leave after EOI (zero padding up to a USB packet or a bulk transfer).
# An EOI further from the end belongs to something else, e.g. an embedded EXIF thumbnail.
_EOI_SLACK = 4096


def _huffman_table(table_class_id: int, counts: str, symbols: str) -> bytes:
    lengths, values = bytes.fromhex(counts), bytes.fromhex(symbols)
    if len(lengths) != 16 or sum(lengths) != len(values):
        raise ValueError(f"malformed Huffman table {table_class_id:#x}")
    return bytes([table_class_id]) + lengths + values


# ITU-T T.81 Annex K.3 (K.3.3.1 and K.3.3.2) typical tables: what UVC cameras that omit DHT
# ("AVI1" Motion-JPEG) encode with, and what libjpeg's own encoder writes by default.
_ANNEX_K_TABLES = (
    _huffman_table(0x00, "00010501010101010100000000000000", "000102030405060708090a0b"),
    _huffman_table(0x01, "00030101010101010101010000000000", "000102030405060708090a0b"),
    _huffman_table(
        0x10,
        "0002010303020403050504040000017d",
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
        "535455565758595a636465666768696a737475767778797a838485868788898a"
        "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6"
        "c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa",
    ),
    _huffman_table(
        0x11,
        "00020102040403040705040400010277",
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa",
    ),
)
_ANNEX_K_DHT = (
    bytes([0xFF, _DHT])
    + (2 + sum(map(len, _ANNEX_K_TABLES))).to_bytes(2, "big")
    + b"".join(_ANNEX_K_TABLES)
)


def _scan_header(buf: bytes) -> tuple[int, bool] | None:
    """(offset of the SOS marker, whether a DHT came before it), or None if malformed."""
    if not buf.startswith(_SOI):
        return None
    i, has_dht = 2, False
    while i + 4 <= len(buf):
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == _SOS:
            return i, has_dht
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:  # RSTn, SOI, EOI, TEM: no length
            i += 2
        else:
            has_dht = has_dht or marker == _DHT
            length = int.from_bytes(buf[i + 2 : i + 4], "big")
            if length < 2:
                return None
            i += 2 + length
    return None


def insert_huffman_tables(buf: bytes) -> bytes:
    """The JPEG with the Annex K Huffman tables inserted before SOS if it carries none.

    Many UVC cameras send Motion-JPEG without DHT, relying on the decoder to assume the
    standard tables; libjpeg-turbo does, most other decoders (hardware ones too) do not.
    Returns ``buf`` unchanged when it already has tables or its header cannot be parsed.
    """
    scan = _scan_header(buf)
    if scan is None or scan[1]:
        return buf
    sos = scan[0]
    return buf[:sos] + _ANNEX_K_DHT + buf[sos:]


def decode_mjpeg(buf: bytes) -> np.ndarray | None:
    """One Motion-JPEG frame as BGR uint8, or None if it is corrupt or truncated.

    The EOI check comes first because libjpeg "decodes" a truncated stream by filling the
    missing part with grey, which would pass for a picture.
    """
    scan = _scan_header(buf)
    if scan is None:
        return None
    eoi = buf.rfind(_EOI)
    if eoi < scan[0] or len(buf) - eoi > _EOI_SLACK:
        return None
    data = buf[: eoi + 2] if scan[1] else insert_huffman_tables(buf[: eoi + 2])
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3:
        return None
    return image


# ---------------------------------------------------------------- YUYV


def yuyv_frame_bytes(width: int, height: int, bytesperline: int) -> int:
    """The fewest bytes a YUYV frame can have (the last line's padding may be left out)."""
    return bytesperline * (height - 1) + 2 * width


def decode_yuyv(buf: bytes, width: int, height: int, bytesperline: int) -> np.ndarray:
    """A packed YUYV 4:2:2 frame (lines ``bytesperline`` apart) as BGR uint8.

    Raises ValueError when ``buf`` is too short for the geometry.
    """
    if width <= 0 or height <= 0 or width % 2 or bytesperline < 2 * width:
        raise ValueError(f"bad YUYV geometry {width}x{height}, bytesperline {bytesperline}")
    need = yuyv_frame_bytes(width, height, bytesperline)
    if len(buf) < need:
        raise ValueError(f"YUYV frame of {len(buf)} bytes, {width}x{height} needs {need}")
    flat = np.frombuffer(buf, np.uint8, count=need)
    lines = np.lib.stride_tricks.as_strided(
        flat, shape=(height, width, 2), strides=(bytesperline, 2, 1), writeable=False
    )
    return cv2.cvtColor(np.ascontiguousarray(lines), cv2.COLOR_YUV2BGR_YUYV)


# ---------------------------------------------------------------- mode choice


@dataclass(frozen=True)
class Mode:
    fourcc: str
    width: int
    height: int
    fps: float  # 0.0 when the driver lists no rates for the size


def choose_mode(
    formats: list[FormatInfo], width: int, height: int, fps: float, prefer: tuple[str, ...]
) -> Mode | None:
    """The mode to ask for, or None when the device offers none of ``prefer``.

    Size first: exact, else the smallest that covers the request (downscaling keeps
    detail), else the largest there is. Then the rate nearest ``fps`` (to the nearest
    whole fps), and only then the order of ``prefer``: a preferred MJPEG at 5 fps loses
    to YUYV at 30.
    """
    best: tuple[tuple[int, int, int, int], Mode] | None = None
    for code, _description, sizes in formats:
        # Some drivers call Motion-JPEG "JPEG"; it decodes the same way.
        name = code if code in prefer else {"JPEG": "MJPG", "MJPG": "JPEG"}.get(code, code)
        if name not in prefer:
            continue
        for w, h, rates in sizes:
            if (w, h) == (width, height):
                size_rank = (0, 0)
            elif w >= width and h >= height:
                size_rank = (1, w * h)
            else:
                size_rank = (2, -w * h)
            rate = min(rates, key=lambda r: (abs(r - fps), -r)) if rates else 0.0
            miss = round(abs(rate - fps)) if rates else 0
            key = (*size_rank, miss, prefer.index(name))
            if best is None or key < best[0]:
                best = (key, Mode(code, w, h, rate))
    return best[1] if best else None


# ---------------------------------------------------------------- devices


def _video_number(path: Path) -> int:
    match = re.fullmatch(r"video(\d+)", path.name)
    return int(match.group(1)) if match else -1


def describe_capture_devices(dev_dir: str = "/dev") -> list[tuple[str, str]]:
    """(path, card name) of the /dev/videoN nodes that can stream video capture, by number.

    A UVC camera registers two nodes (video and metadata); only the first qualifies.
    Nodes that cannot be opened (busy with exclusive drivers, no permission) are skipped.
    """
    nodes = sorted(
        (p for p in Path(dev_dir).glob("video*") if _video_number(p) >= 0), key=_video_number
    )
    found = []
    for node in nodes:
        try:
            with v4l2.Device(str(node)) as device:
                if device.is_capture():
                    card = device.querycap().card.decode(errors="replace")
                    found.append((str(node), card))
        except OSError:
            continue
    return found


def list_capture_devices(dev_dir: str = "/dev") -> list[str]:
    """The paths of ``describe_capture_devices``."""
    return [path for path, _ in describe_capture_devices(dev_dir)]


class V4L2Source(Source):
    """``v4l2:///dev/videoN``: a UVC camera, MMAP streaming, MJPEG or YUYV decoded to BGR.

    ``read`` requeues the buffer as soon as its bytes are copied out, so decoding never
    holds a driver buffer. Corrupt MJPEG frames (cameras send truncated ones now and then)
    are dropped and counted in ``corrupt_frames``; an unplugged camera raises SourceError.
    """

    def __init__(
        self,
        path: str,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        uri: str | None = None,
        prefer: tuple[str, ...] = ("MJPG", "YUYV"),
    ) -> None:
        unknown = [code for code in prefer if code not in DECODABLE]
        if unknown or not prefer:
            raise ValueError(f"cannot decode {unknown or 'nothing'}; choose from {DECODABLE}")
        self.path = path
        self.uri = uri or f"v4l2://{path}"
        self.prefer = prefer
        self._want = (width, height, fps)
        self._device: v4l2.Device | None = None
        self._mode = Mode(prefer[0], width, height, fps)
        self._bytesperline = 2 * width
        self._seq = 0
        self.corrupt_frames = 0

    def open(self) -> None:
        if self._device is not None:
            return
        try:
            device = v4l2.Device(self.path)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SourceError(f"{self.uri}: cannot open ({reason})") from exc
        try:
            self._configure(device)
        except OSError as exc:
            device.close()
            raise SourceError(f"{self.uri}: {exc.strerror}") from exc
        except BaseException:
            device.close()
            raise
        self._device = device

    def _configure(self, device: v4l2.Device) -> None:
        if not device.is_capture():
            raise SourceError(f"{self.uri} is not a capture node (metadata node of a USB camera?)")
        width, height, fps = self._want
        formats = device.formats()
        mode = choose_mode(formats, width, height, fps, self.prefer)
        if mode is None:
            offered = ", ".join(code for code, _, _ in formats) or "none"
            raise SourceError(
                f"{self.uri} offers none of {', '.join(self.prefer)} (it offers {offered})"
            )
        pix = device.set_format(mode.width, mode.height, mode.fourcc)
        chosen = v4l2.fourcc_str(pix.pixelformat)
        if chosen not in DECODABLE:
            raise SourceError(f"{self.uri}: driver switched to undecodable format {chosen}")
        try:
            actual_fps = device.set_fps(mode.fps or fps)
        except v4l2.V4L2Error as exc:
            if exc.errno not in (errno.ENOTTY, errno.EINVAL):
                raise
            actual_fps = 0.0  # no rate control: the camera runs at its own pace
        self._mode = Mode(chosen, int(pix.width), int(pix.height), actual_fps or mode.fps or fps)
        self._bytesperline = int(pix.bytesperline) or 2 * int(pix.width)
        device.start()

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._device is None:
            raise SourceError(f"{self.uri}: read before open")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                buf = self._device.dequeue(max(0.0, remaining))
                if buf is not None:
                    self._device.requeue(buf.index)
            except OSError as exc:
                raise self._failure(exc) from exc
            if buf is None:
                # A node removed under us does not always wake poll(); its absence tells.
                if not os.path.exists(self.path):
                    raise self._disconnected()
                return None
            t_capture = time.monotonic()
            image = self._decode(buf)
            if image is not None:
                break
            self.corrupt_frames += 1
            if remaining <= 0:
                return None
        self._seq += 1
        meta = {
            "format": "MJPG" if self._mode.fourcc == "JPEG" else self._mode.fourcc,
            "device": self.path,
            "driver_sequence": buf.sequence,
            "driver_timestamp": buf.timestamp,
        }
        return Frame(image=image, seq=self._seq, t_capture=t_capture, source=self.uri, meta=meta)

    def _decode(self, buf: v4l2.DequeuedBuffer) -> np.ndarray | None:
        if buf.flags & v4l2.V4L2_BUF_FLAG_ERROR:
            return None  # the driver itself says the frame is damaged (lost USB packets)
        mode = self._mode
        if mode.fourcc != "YUYV":
            return decode_mjpeg(buf.data)
        if len(buf.data) < yuyv_frame_bytes(mode.width, mode.height, self._bytesperline):
            return None
        return decode_yuyv(buf.data, mode.width, mode.height, self._bytesperline)

    def _failure(self, exc: OSError) -> SourceError:
        if isinstance(exc, v4l2.V4L2Disconnected) or not os.path.exists(self.path):
            return self._disconnected()
        return SourceError(f"{self.uri}: {exc.strerror or exc}")

    def _disconnected(self) -> SourceError:
        self.close()
        return SourceError(f"{self.uri} disconnected")

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    @property
    def size(self) -> tuple[int, int]:
        return (self._mode.width, self._mode.height)

    @property
    def fps(self) -> float:
        return self._mode.fps
