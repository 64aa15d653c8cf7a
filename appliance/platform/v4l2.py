"""Linux V4L2 (``linux/videodev2.h``) from Python: ctypes structures, ioctls, a streaming Device.

Only what the appliance needs: single-planar capture from USB (UVC) cameras and, for the
UVC gadget, single-planar output (``buf_type=V4L2_BUF_TYPE_VIDEO_OUTPUT``), both with MMAP
buffers, plus the event interface the gadget driver talks through.

Layouts are those of LP64 Linux (x86_64, aarch64 — the Jetson): ``struct timeval`` and
``struct timespec`` are two ``long``s and the asm-generic ioctl encoding applies. 32-bit
userspace (time64 variants) and architectures with another ioctl encoding (powerpc, mips,
sparc, alpha) are not supported.

What runs where: struct layouts, ioctl numbers and ``fourcc`` are checked by unit tests on
any machine; ``Device`` talks to a driver and is exercised only where a /dev/video node
exists (a UVC camera, vivid or v4l2loopback) — the unit tests reach only its error paths.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import select
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

# ---------------------------------------------------------------- ioctl request encoding
# include/uapi/asm-generic/ioctl.h: dir:2 | size:14 | type:8 | nr:8.

_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction: int, kind: str, nr: int, size: int) -> int:
    if not 0 <= size < 1 << 14:
        raise ValueError(f"ioctl argument of {size} bytes does not fit the size field")
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


def _IOR(kind: str, nr: int, ctype: type[Any]) -> int:
    return _IOC(_IOC_READ, kind, nr, ctypes.sizeof(ctype))


def _IOW(kind: str, nr: int, ctype: type[Any]) -> int:
    return _IOC(_IOC_WRITE, kind, nr, ctypes.sizeof(ctype))


def _IOWR(kind: str, nr: int, ctype: type[Any]) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, kind, nr, ctypes.sizeof(ctype))


# ---------------------------------------------------------------- structures

_u8, _u32, _s32, _s64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int32, ctypes.c_int64


class timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class v4l2_capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", _u32),
        ("capabilities", _u32),  # of the whole physical device
        ("device_caps", _u32),  # of this node; valid when V4L2_CAP_DEVICE_CAPS is set
        ("reserved", _u32 * 3),
    ]


class v4l2_fmtdesc(ctypes.Structure):
    _fields_ = [
        ("index", _u32),
        ("type", _u32),
        ("flags", _u32),
        ("description", ctypes.c_char * 32),
        ("pixelformat", _u32),
        ("mbus_code", _u32),
        ("reserved", _u32 * 3),
    ]


class v4l2_frmsize_discrete(ctypes.Structure):
    _fields_ = [("width", _u32), ("height", _u32)]


class v4l2_frmsize_stepwise(ctypes.Structure):
    _fields_ = [
        ("min_width", _u32),
        ("max_width", _u32),
        ("step_width", _u32),
        ("min_height", _u32),
        ("max_height", _u32),
        ("step_height", _u32),
    ]


class _frmsize_union(ctypes.Union):
    _fields_ = [("discrete", v4l2_frmsize_discrete), ("stepwise", v4l2_frmsize_stepwise)]


class v4l2_frmsizeenum(ctypes.Structure):
    _anonymous_ = ("_u",)
    _fields_ = [
        ("index", _u32),
        ("pixel_format", _u32),
        ("type", _u32),
        ("_u", _frmsize_union),
        ("reserved", _u32 * 2),
    ]


class v4l2_fract(ctypes.Structure):
    _fields_ = [("numerator", _u32), ("denominator", _u32)]


class v4l2_frmival_stepwise(ctypes.Structure):
    _fields_ = [("min", v4l2_fract), ("max", v4l2_fract), ("step", v4l2_fract)]


class _frmival_union(ctypes.Union):
    _fields_ = [("discrete", v4l2_fract), ("stepwise", v4l2_frmival_stepwise)]


class v4l2_frmivalenum(ctypes.Structure):
    _anonymous_ = ("_u",)
    _fields_ = [
        ("index", _u32),
        ("pixel_format", _u32),
        ("width", _u32),
        ("height", _u32),
        ("type", _u32),
        ("_u", _frmival_union),
        ("reserved", _u32 * 2),
    ]


class v4l2_pix_format(ctypes.Structure):
    _fields_ = [
        ("width", _u32),
        ("height", _u32),
        ("pixelformat", _u32),
        ("field", _u32),
        ("bytesperline", _u32),
        ("sizeimage", _u32),
        ("colorspace", _u32),
        ("priv", _u32),
        ("flags", _u32),
        ("ycbcr_enc", _u32),  # a union with hsv_enc in the header; same size
        ("quantization", _u32),
        ("xfer_func", _u32),
    ]


class _format_union(ctypes.Union):
    # The kernel's union also holds struct v4l2_window, which contains pointers: that
    # makes it 8-byte aligned on LP64, so it starts at offset 8, not 4 (sizeof = 208).
    _fields_ = [
        ("pix", v4l2_pix_format),
        ("raw_data", _u8 * 200),
        ("_pointer_alignment", ctypes.c_void_p),
    ]


class v4l2_format(ctypes.Structure):
    _fields_ = [("type", _u32), ("fmt", _format_union)]


class v4l2_captureparm(ctypes.Structure):
    _fields_ = [
        ("capability", _u32),
        ("capturemode", _u32),
        ("timeperframe", v4l2_fract),
        ("extendedmode", _u32),
        ("readbuffers", _u32),
        ("reserved", _u32 * 4),
    ]


class v4l2_outputparm(ctypes.Structure):
    _fields_ = [
        ("capability", _u32),
        ("outputmode", _u32),
        ("timeperframe", v4l2_fract),
        ("extendedmode", _u32),
        ("writebuffers", _u32),
        ("reserved", _u32 * 4),
    ]


class _streamparm_union(ctypes.Union):
    _fields_ = [
        ("capture", v4l2_captureparm),
        ("output", v4l2_outputparm),
        ("raw_data", _u8 * 200),
    ]


class v4l2_streamparm(ctypes.Structure):
    _fields_ = [("type", _u32), ("parm", _streamparm_union)]


class v4l2_requestbuffers(ctypes.Structure):
    _fields_ = [
        ("count", _u32),
        ("type", _u32),
        ("memory", _u32),
        ("capabilities", _u32),
        ("flags", _u8),
        ("reserved", _u8 * 3),
    ]


class v4l2_timecode(ctypes.Structure):
    _fields_ = [
        ("type", _u32),
        ("flags", _u32),
        ("frames", _u8),
        ("seconds", _u8),
        ("minutes", _u8),
        ("hours", _u8),
        ("userbits", _u8 * 4),
    ]


class _buffer_m(ctypes.Union):
    _fields_ = [
        ("offset", _u32),  # MMAP: the cookie to pass to mmap()
        ("userptr", ctypes.c_ulong),
        ("planes", ctypes.c_void_p),
        ("fd", _s32),
    ]


class v4l2_buffer(ctypes.Structure):
    _fields_ = [
        ("index", _u32),
        ("type", _u32),
        ("bytesused", _u32),
        ("flags", _u32),
        ("field", _u32),
        ("timestamp", timeval),
        ("timecode", v4l2_timecode),
        ("sequence", _u32),
        ("memory", _u32),
        ("m", _buffer_m),
        ("length", _u32),
        ("reserved2", _u32),
        ("request_fd", _s32),  # a union with __u32 reserved in the header; same size
    ]


class v4l2_event_subscription(ctypes.Structure):
    _fields_ = [("type", _u32), ("id", _u32), ("flags", _u32), ("reserved", _u32 * 5)]


class _event_union(ctypes.Union):
    # struct v4l2_event_ctrl in the kernel's union has an __s64, so the union is 8-byte
    # aligned and the payload starts at offset 8; the UVC gadget's struct uvc_event is
    # read from ``data``.
    _fields_ = [("data", _u8 * 64), ("_s64_alignment", _s64)]


class v4l2_event(ctypes.Structure):
    _fields_ = [
        ("type", _u32),
        ("u", _event_union),
        ("pending", _u32),
        ("sequence", _u32),
        ("timestamp", timespec),
        ("id", _u32),
        ("reserved", _u32 * 8),
    ]


class v4l2_queryctrl(ctypes.Structure):
    _fields_ = [
        ("id", _u32),
        ("type", _u32),
        ("name", ctypes.c_char * 32),
        ("minimum", _s32),
        ("maximum", _s32),
        ("step", _s32),
        ("default_value", _s32),
        ("flags", _u32),
        ("reserved", _u32 * 2),
    ]


class v4l2_control(ctypes.Structure):
    _fields_ = [("id", _u32), ("value", _s32)]


# ---------------------------------------------------------------- ioctls

VIDIOC_QUERYCAP = _IOR("V", 0, v4l2_capability)
VIDIOC_ENUM_FMT = _IOWR("V", 2, v4l2_fmtdesc)
VIDIOC_G_FMT = _IOWR("V", 4, v4l2_format)
VIDIOC_S_FMT = _IOWR("V", 5, v4l2_format)
VIDIOC_REQBUFS = _IOWR("V", 8, v4l2_requestbuffers)
VIDIOC_QUERYBUF = _IOWR("V", 9, v4l2_buffer)
VIDIOC_QBUF = _IOWR("V", 15, v4l2_buffer)
VIDIOC_DQBUF = _IOWR("V", 17, v4l2_buffer)
VIDIOC_STREAMON = _IOW("V", 18, ctypes.c_int)
VIDIOC_STREAMOFF = _IOW("V", 19, ctypes.c_int)
VIDIOC_G_PARM = _IOWR("V", 21, v4l2_streamparm)
VIDIOC_S_PARM = _IOWR("V", 22, v4l2_streamparm)
VIDIOC_G_CTRL = _IOWR("V", 27, v4l2_control)
VIDIOC_S_CTRL = _IOWR("V", 28, v4l2_control)
VIDIOC_QUERYCTRL = _IOWR("V", 36, v4l2_queryctrl)
VIDIOC_ENUM_FRAMESIZES = _IOWR("V", 74, v4l2_frmsizeenum)
VIDIOC_ENUM_FRAMEINTERVALS = _IOWR("V", 75, v4l2_frmivalenum)
VIDIOC_DQEVENT = _IOR("V", 89, v4l2_event)
VIDIOC_SUBSCRIBE_EVENT = _IOW("V", 90, v4l2_event_subscription)
VIDIOC_UNSUBSCRIBE_EVENT = _IOW("V", 91, v4l2_event_subscription)

# ---------------------------------------------------------------- constants

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
V4L2_CAP_VIDEO_OUTPUT_MPLANE = 0x00002000
V4L2_CAP_META_CAPTURE = 0x00800000
V4L2_CAP_READWRITE = 0x01000000
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000

V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2

V4L2_MEMORY_MMAP = 1

V4L2_FIELD_ANY = 0
V4L2_FIELD_NONE = 1

V4L2_FMT_FLAG_COMPRESSED = 0x0001
V4L2_FMT_FLAG_EMULATED = 0x0002

V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FRMSIZE_TYPE_CONTINUOUS = 2
V4L2_FRMSIZE_TYPE_STEPWISE = 3
V4L2_FRMIVAL_TYPE_DISCRETE = 1
V4L2_FRMIVAL_TYPE_CONTINUOUS = 2
V4L2_FRMIVAL_TYPE_STEPWISE = 3

V4L2_CAP_TIMEPERFRAME = 0x1000  # in v4l2_captureparm/v4l2_outputparm.capability

V4L2_BUF_FLAG_MAPPED = 0x00000001
V4L2_BUF_FLAG_QUEUED = 0x00000002
V4L2_BUF_FLAG_DONE = 0x00000004
V4L2_BUF_FLAG_ERROR = 0x00000040  # the driver delivered the buffer but the data is damaged
V4L2_BUF_FLAG_TIMESTAMP_MASK = 0x0000E000
V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC = 0x00002000

V4L2_EVENT_ALL = 0
V4L2_EVENT_VSYNC = 1
V4L2_EVENT_EOS = 2
V4L2_EVENT_CTRL = 3
V4L2_EVENT_FRAME_SYNC = 4
V4L2_EVENT_SOURCE_CHANGE = 5
V4L2_EVENT_MOTION_DET = 6
V4L2_CTRL_FLAG_NEXT_CTRL = 0x80000000
V4L2_CTRL_FLAG_DISABLED = 0x0001
V4L2_EVENT_PRIVATE_START = 0x08000000  # driver-specific events (the UVC gadget's) start here
V4L2_EVENT_SUB_FL_SEND_INITIAL = 0x0001
V4L2_EVENT_SUB_FL_ALLOW_FEEDBACK = 0x0002


def fourcc(code: str) -> int:
    """``v4l2_fourcc('M','J','P','G')``: four ASCII characters, first in the low byte."""
    raw = code.encode("ascii")
    if len(raw) != 4:
        raise ValueError(f"a fourcc is four characters, got {code!r}")
    return int.from_bytes(raw, "little")


def fourcc_str(value: int) -> str:
    """The four characters of a pixel format code, e.g. ``"MJPG"``."""
    return (value & 0xFFFFFFFF).to_bytes(4, "little").decode("ascii", "replace")


V4L2_PIX_FMT_MJPEG = fourcc("MJPG")
V4L2_PIX_FMT_JPEG = fourcc("JPEG")
V4L2_PIX_FMT_YUYV = fourcc("YUYV")
V4L2_PIX_FMT_NV12 = fourcc("NV12")
V4L2_PIX_FMT_H264 = fourcc("H264")

# ---------------------------------------------------------------- errors

# What a driver answers once its device has been unregistered (USB unplug): ENODEV from the
# V4L2 core, EIO from videobuf2 (queue marked in error), ENXIO from some open paths.
DISCONNECT_ERRNOS = frozenset({errno.ENODEV, errno.EIO, errno.ENXIO})


class V4L2Error(OSError):
    """An ioctl, open or mmap on a V4L2 node failed; ``op`` names it, ``errno`` says why."""

    def __init__(self, op: str, path: str, err: int) -> None:
        super().__init__(err, f"{op} on {path}: {os.strerror(err)}")
        self.op = op
        self.path = path

    @property
    def disconnected(self) -> bool:
        return self.errno in DISCONNECT_ERRNOS


class V4L2Disconnected(V4L2Error):
    """The device is gone (unplugged); close it and look for it again later."""


def _error(op: str, path: str, err: int | None) -> V4L2Error:
    err = err or errno.EIO
    cls = V4L2Disconnected if err in DISCONNECT_ERRNOS else V4L2Error
    return cls(op, path, err)


# ---------------------------------------------------------------- device

# (width, height, [fps, ...]) and (fourcc, description, sizes), as ``Device.formats`` lists them.
FrameSize = tuple[int, int, list[float]]
FormatInfo = tuple[str, str, list[FrameSize]]

_S = TypeVar("_S", bound=ctypes.Structure)
_ENUM_LIMIT = 256  # a buggy driver must not keep an enumeration going for ever


@dataclass(frozen=True)
class DequeuedBuffer:
    index: int
    bytesused: int
    timestamp: float  # seconds; CLOCK_MONOTONIC when flags has V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC
    sequence: int  # the driver's frame counter: gaps are frames it dropped
    flags: int
    data: bytes  # a copy of the first ``bytesused`` bytes (empty when not asked for)


def _fps(period: v4l2_fract) -> float:
    return period.denominator / period.numerator if period.numerator else 0.0


class Device:
    """One open /dev/videoN node, single-planar, MMAP streaming.

    Capture: ``start()``, then ``dequeue()``/``requeue()`` in a loop, ``stop()``.
    Output (UVC gadget): ``allocate()``, fill ``buffer(i)`` and ``queue(i, n)``,
    ``stream_on()``; ``dequeue(copy=False)`` hands back buffers to refill.

    Needs a real driver: exercised on hardware (or vivid), not by the unit tests.
    """

    def __init__(self, path: str, buf_type: int = V4L2_BUF_TYPE_VIDEO_CAPTURE) -> None:
        self.path = path
        self.buf_type = buf_type
        self._buffers: list[mmap.mmap] = []
        self._streaming = False
        self._fd = -1
        try:
            # Non-blocking, so DQBUF/DQEVENT answer EAGAIN/ENOENT instead of sleeping;
            # waiting is done with poll() and a timeout.
            self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _error("open", path, exc.errno) from None

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self._fd

    @property
    def _is_output(self) -> bool:
        return self.buf_type == V4L2_BUF_TYPE_VIDEO_OUTPUT

    def _ioctl(self, op: str, request: int, arg: Any) -> int:
        if self._fd < 0:
            raise V4L2Error(op, self.path, errno.EBADF)
        while True:
            try:
                result = fcntl.ioctl(self._fd, request, arg, True)
            except InterruptedError:
                continue
            except OSError as exc:
                raise _error(op, self.path, exc.errno) from None
            # Only negative results are failures: REQBUFS, for one, may return a count.
            if result < 0:
                raise _error(op, self.path, errno.EIO)
            return result

    def _enumerate(self, op: str, request: int, make: Callable[[int], _S]) -> Iterator[_S]:
        for index in range(_ENUM_LIMIT):
            arg = make(index)
            try:
                self._ioctl(op, request, arg)
            except V4L2Error as exc:
                # EINVAL is the documented end of the list; ENOTTY: the driver has no list.
                if exc.errno in (errno.EINVAL, errno.ENOTTY):
                    return
                raise
            yield arg

    # -- identity

    def querycap(self) -> v4l2_capability:
        cap = v4l2_capability()
        self._ioctl("VIDIOC_QUERYCAP", VIDIOC_QUERYCAP, cap)
        return cap

    def node_caps(self) -> int:
        """Capabilities of this node: a UVC camera has a capture node and a metadata node."""
        cap = self.querycap()
        return int(cap.device_caps if cap.capabilities & V4L2_CAP_DEVICE_CAPS else cap.capabilities)

    def is_capture(self) -> bool:
        caps = self.node_caps()
        return bool(caps & V4L2_CAP_VIDEO_CAPTURE) and bool(caps & V4L2_CAP_STREAMING)

    def is_output(self) -> bool:
        caps = self.node_caps()
        return bool(caps & V4L2_CAP_VIDEO_OUTPUT) and bool(caps & V4L2_CAP_STREAMING)

    # -- formats

    def formats(self) -> list[FormatInfo]:
        """Every pixel format with its frame sizes and their frame rates (fps, fastest first).

        Stepwise/continuous sizes or intervals are reported by their two extremes; the
        driver rounds a request between them in ``set_format``/``set_fps``.
        """
        result: list[FormatInfo] = []
        descs = self._enumerate(
            "VIDIOC_ENUM_FMT", VIDIOC_ENUM_FMT, lambda i: v4l2_fmtdesc(index=i, type=self.buf_type)
        )
        for desc in list(descs):
            code = int(desc.pixelformat)
            sizes = [(w, h, self.frame_rates(code, w, h)) for w, h in self.frame_sizes(code)]
            result.append((fourcc_str(code), desc.description.decode(errors="replace"), sizes))
        return result

    def frame_sizes(self, pixelformat: int) -> list[tuple[int, int]]:
        sizes: list[tuple[int, int]] = []
        enum = self._enumerate(
            "VIDIOC_ENUM_FRAMESIZES",
            VIDIOC_ENUM_FRAMESIZES,
            lambda i: v4l2_frmsizeenum(index=i, pixel_format=pixelformat),
        )
        for size in enum:
            if size.type == V4L2_FRMSIZE_TYPE_DISCRETE:
                sizes.append((int(size.discrete.width), int(size.discrete.height)))
            else:  # stepwise/continuous: a single entry at index 0
                step = size.stepwise
                sizes += [
                    (int(step.min_width), int(step.min_height)),
                    (int(step.max_width), int(step.max_height)),
                ]
                break
        return list(dict.fromkeys(sizes))

    def frame_rates(self, pixelformat: int, width: int, height: int) -> list[float]:
        rates: list[float] = []
        enum = self._enumerate(
            "VIDIOC_ENUM_FRAMEINTERVALS",
            VIDIOC_ENUM_FRAMEINTERVALS,
            lambda i: v4l2_frmivalenum(
                index=i, pixel_format=pixelformat, width=width, height=height
            ),
        )
        for interval in enum:
            if interval.type == V4L2_FRMIVAL_TYPE_DISCRETE:
                rates.append(_fps(interval.discrete))
            else:  # the shortest interval is the highest rate
                rates += [_fps(interval.stepwise.min), _fps(interval.stepwise.max)]
                break
        return sorted({rate for rate in rates if rate > 0}, reverse=True)

    def get_format(self) -> v4l2_pix_format:
        fmt = v4l2_format(type=self.buf_type)
        self._ioctl("VIDIOC_G_FMT", VIDIOC_G_FMT, fmt)
        pix: v4l2_pix_format = fmt.fmt.pix
        return pix

    def set_format(
        self, width: int, height: int, pixelformat: int | str, sizeimage: int = 0
    ) -> v4l2_pix_format:
        """Ask for a format; returns what the driver chose, which may differ in every field.

        ``sizeimage`` matters for compressed output (the gadget's MJPEG buffer size).
        """
        code = fourcc(pixelformat) if isinstance(pixelformat, str) else pixelformat
        fmt = v4l2_format(type=self.buf_type)
        pix = fmt.fmt.pix
        pix.width, pix.height, pix.pixelformat = width, height, code
        pix.field = V4L2_FIELD_NONE  # progressive; the driver overrides what it cannot do
        pix.sizeimage = sizeimage
        self._ioctl("VIDIOC_S_FMT", VIDIOC_S_FMT, fmt)
        chosen: v4l2_pix_format = fmt.fmt.pix
        return chosen

    def _parm_arm(self, parm: v4l2_streamparm) -> Any:
        return parm.parm.output if self._is_output else parm.parm.capture

    def get_fps(self) -> float:
        parm = v4l2_streamparm(type=self.buf_type)
        self._ioctl("VIDIOC_G_PARM", VIDIOC_G_PARM, parm)
        return _fps(self._parm_arm(parm).timeperframe)

    def set_fps(self, fps: float) -> float:
        """Ask for a frame rate; returns the rate the driver set (0.0 if it will not say)."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        parm = v4l2_streamparm(type=self.buf_type)
        self._ioctl("VIDIOC_G_PARM", VIDIOC_G_PARM, parm)
        arm = self._parm_arm(parm)
        if not arm.capability & V4L2_CAP_TIMEPERFRAME:
            return _fps(arm.timeperframe)  # fixed-rate driver: S_PARM would be ignored
        rate = Fraction(fps).limit_denominator(1001)  # keeps 30000/1001 exact
        arm.timeperframe.numerator = rate.denominator
        arm.timeperframe.denominator = rate.numerator
        self._ioctl("VIDIOC_S_PARM", VIDIOC_S_PARM, parm)
        return _fps(arm.timeperframe)

    # -- controls

    def controls(self) -> dict[str, dict[str, int]]:
        """Every control the driver lists: name -> id, minimum, maximum, step, default."""
        found: dict[str, dict[str, int]] = {}
        next_id = V4L2_CTRL_FLAG_NEXT_CTRL
        for _ in range(_ENUM_LIMIT):
            query = v4l2_queryctrl(id=next_id)
            try:
                self._ioctl("VIDIOC_QUERYCTRL", VIDIOC_QUERYCTRL, query)
            except V4L2Error as exc:
                if exc.errno == errno.EINVAL:  # past the last control
                    break
                raise
            if not query.flags & V4L2_CTRL_FLAG_DISABLED:
                found[query.name.decode(errors="replace")] = {
                    "id": int(query.id),
                    "minimum": int(query.minimum),
                    "maximum": int(query.maximum),
                    "step": int(query.step),
                    "default": int(query.default_value),
                }
            next_id = int(query.id) | V4L2_CTRL_FLAG_NEXT_CTRL
        return found

    def get_control(self, control_id: int) -> int:
        control = v4l2_control(id=control_id)
        self._ioctl("VIDIOC_G_CTRL", VIDIOC_G_CTRL, control)
        return int(control.value)

    def set_control(self, control_id: int, value: int) -> int:
        """Set a control; returns the value the driver kept (it may clamp)."""
        control = v4l2_control(id=control_id, value=value)
        self._ioctl("VIDIOC_S_CTRL", VIDIOC_S_CTRL, control)
        return int(control.value)

    # -- buffers and streaming

    def _buffer_arg(self, index: int) -> v4l2_buffer:
        return v4l2_buffer(index=index, type=self.buf_type, memory=V4L2_MEMORY_MMAP)

    @property
    def buffer_count(self) -> int:
        return len(self._buffers)

    def buffer(self, index: int) -> mmap.mmap:
        """The mapped memory of buffer ``index`` (for output: write the frame here)."""
        return self._buffers[index]

    def allocate(self, count: int = 4) -> int:
        """REQBUFS + QUERYBUF + mmap; returns how many buffers the driver granted."""
        req = v4l2_requestbuffers(count=count, type=self.buf_type, memory=V4L2_MEMORY_MMAP)
        self._ioctl("VIDIOC_REQBUFS", VIDIOC_REQBUFS, req)
        if req.count == 0:
            raise V4L2Error("VIDIOC_REQBUFS", self.path, errno.ENOMEM)
        try:
            for index in range(req.count):
                buf = self._buffer_arg(index)
                self._ioctl("VIDIOC_QUERYBUF", VIDIOC_QUERYBUF, buf)
                try:
                    mapped = mmap.mmap(
                        self._fd,
                        buf.length,
                        mmap.MAP_SHARED,
                        mmap.PROT_READ | mmap.PROT_WRITE,
                        offset=buf.m.offset,
                    )
                except OSError as exc:
                    raise _error("mmap", self.path, exc.errno) from None
                self._buffers.append(mapped)
        except BaseException:
            self.release()
            raise
        return int(req.count)

    def queue(self, index: int, bytesused: int = 0) -> None:
        """QBUF: give buffer ``index`` to the driver (``bytesused`` is for output)."""
        buf = self._buffer_arg(index)
        if self._is_output:
            buf.bytesused = bytesused
            buf.field = V4L2_FIELD_NONE
        self._ioctl("VIDIOC_QBUF", VIDIOC_QBUF, buf)

    def requeue(self, index: int) -> None:
        """Hand a dequeued capture buffer back for the driver to fill again."""
        self.queue(index)

    def stream_on(self) -> None:
        self._ioctl("VIDIOC_STREAMON", VIDIOC_STREAMON, ctypes.c_int(self.buf_type))
        self._streaming = True

    def stream_off(self) -> None:
        self._streaming = False  # even if it fails: a dead device is not streaming either
        self._ioctl("VIDIOC_STREAMOFF", VIDIOC_STREAMOFF, ctypes.c_int(self.buf_type))

    def start(self, nbuf: int = 4) -> int:
        """Capture: allocate ``nbuf`` buffers (the driver may grant another count), queue
        them all and stream on. Returns the number of buffers."""
        count = self.allocate(nbuf)
        try:
            for index in range(count):
                self.queue(index)
            self.stream_on()
        except BaseException:
            self.stop()
            raise
        return count

    def dequeue(self, timeout: float, copy: bool = True) -> DequeuedBuffer | None:
        """Wait up to ``timeout`` s for a filled (capture) or consumed (output) buffer.

        Returns None on timeout. The caller must ``requeue``/``queue`` the index. Raises
        V4L2Disconnected when the device has gone away.
        """
        if not self._buffers:
            raise V4L2Error("VIDIOC_DQBUF", self.path, errno.EINVAL)
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT if self._is_output else select.POLLIN)
        # POLLERR/POLLHUP wake us too; DQBUF then reports the reason as an errno.
        if not poller.poll(max(0, round(timeout * 1000))):
            return None
        buf = self._buffer_arg(0)
        try:
            self._ioctl("VIDIOC_DQBUF", VIDIOC_DQBUF, buf)
        except V4L2Error as exc:
            if exc.errno == errno.EAGAIN:
                return None
            raise
        index = int(buf.index)
        if index >= len(self._buffers):
            raise V4L2Error("VIDIOC_DQBUF", self.path, errno.EINVAL)
        used = min(int(buf.bytesused), len(self._buffers[index]))
        return DequeuedBuffer(
            index=index,
            bytesused=used,
            timestamp=buf.timestamp.tv_sec + buf.timestamp.tv_usec / 1e6,
            sequence=int(buf.sequence),
            flags=int(buf.flags),
            data=self._buffers[index][:used] if copy else b"",
        )

    def release(self) -> None:
        """munmap every buffer, then REQBUFS 0 (vb2 refuses to free buffers still mapped)."""
        if not self._buffers:
            return
        for mapped in self._buffers:
            mapped.close()
        self._buffers.clear()
        req = v4l2_requestbuffers(count=0, type=self.buf_type, memory=V4L2_MEMORY_MMAP)
        try:
            self._ioctl("VIDIOC_REQBUFS", VIDIOC_REQBUFS, req)
        except V4L2Error as exc:
            if not exc.disconnected:
                raise

    def stop(self) -> None:
        """STREAMOFF, munmap, REQBUFS 0. Quiet when the device has already gone."""
        failure: V4L2Error | None = None
        if self._streaming:
            try:
                self.stream_off()
            except V4L2Error as exc:
                failure = exc
        self.release()
        if failure is not None and not failure.disconnected:
            raise failure

    # -- events (the UVC gadget's control channel)

    def subscribe_event(self, event_type: int, event_id: int = 0, flags: int = 0) -> None:
        sub = v4l2_event_subscription(type=event_type, id=event_id, flags=flags)
        self._ioctl("VIDIOC_SUBSCRIBE_EVENT", VIDIOC_SUBSCRIBE_EVENT, sub)

    def unsubscribe_event(self, event_type: int = V4L2_EVENT_ALL, event_id: int = 0) -> None:
        sub = v4l2_event_subscription(type=event_type, id=event_id)
        self._ioctl("VIDIOC_UNSUBSCRIBE_EVENT", VIDIOC_UNSUBSCRIBE_EVENT, sub)

    def dequeue_event(self) -> v4l2_event | None:
        """The next pending event, or None. Poll ``fileno()`` for POLLPRI to wait for one."""
        event = v4l2_event()
        try:
            self._ioctl("VIDIOC_DQEVENT", VIDIOC_DQEVENT, event)
        except V4L2Error as exc:
            if exc.errno in (errno.ENOENT, errno.EAGAIN):  # ENOENT: nothing pending
                return None
            raise
        return event

    def close(self) -> None:
        """Stop streaming if needed and close the node; safe to call twice."""
        if self._fd < 0:
            return
        try:
            self.stop()
        except V4L2Error:
            pass  # closing must succeed whatever state the driver is in
        finally:
            os.close(self._fd)
            self._fd = -1
