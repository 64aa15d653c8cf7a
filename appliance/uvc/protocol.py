"""The UVC class requests a host sends the camera, answered from tables (no I/O here).

The kernel's UVC function (``f_uvc``) forwards every class request on the control and
streaming interfaces to userspace as a SETUP event; this module decides the answer:
bytes for a GET, acceptance of the data stage for a SET_CUR, or a deliberate stall
(``None``) for anything this camera does not implement. A stall also records the UVC
request error code that hosts read back (VC_REQUEST_ERROR_CODE_CONTROL).

Two kinds of requests:

- video streaming: PROBE and COMMIT carry ``struct uvc_streaming_control`` (26 bytes in
  UVC 1.0, 34 in 1.1, 48 in 1.5: the host's wLength says which). Probe is a
  negotiation: the host proposes format, frame and interval, the camera answers the
  nearest it supports; commit fixes the mode the stream will use.
- controls: a processing unit (brightness, contrast, saturation, sharpness) and the
  camera terminal (auto-exposure mode, zoom). Each answers GET_CUR/MIN/MAX/DEF/RES/
  LEN/INFO; SET_CUR of a value outside [min, max] or off the resolution step stalls
  with "out of range".
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

# bRequest codes (UVC 1.5, table A-8)
SET_CUR = 0x01
GET_CUR = 0x81
GET_MIN = 0x82
GET_MAX = 0x83
GET_RES = 0x84
GET_LEN = 0x85
GET_INFO = 0x86
GET_DEF = 0x87
GET_REQUESTS = (GET_CUR, GET_MIN, GET_MAX, GET_RES, GET_LEN, GET_INFO, GET_DEF)

VS_PROBE_CONTROL = 0x01
VS_COMMIT_CONTROL = 0x02
VC_REQUEST_ERROR_CODE_CONTROL = 0x02

# Request error codes (UVC 1.5, 4.2.1.2)
ERR_NONE = 0x00
ERR_NOT_READY = 0x01
ERR_WRONG_STATE = 0x02
ERR_OUT_OF_RANGE = 0x04
ERR_INVALID_UNIT = 0x05
ERR_INVALID_CONTROL = 0x06
ERR_INVALID_REQUEST = 0x07
ERR_INVALID_VALUE = 0x08

# Entity ids of f_uvc's fixed topology: camera terminal -> processing unit -> output.
CAMERA_TERMINAL = 1
PROCESSING_UNIT = 2

INFO_GET_SET = 0x03  # GET and SET supported
INFO_GET = 0x01

USB_DIR_IN = 0x80
USB_TYPE_MASK = 0x60
USB_TYPE_CLASS = 0x20
USB_RECIP_MASK = 0x1F
USB_RECIP_INTERFACE = 0x01

_CONTROL_1_0 = struct.Struct("<HBBIHHHHHII")  # 26 bytes
_CONTROL_1_1 = struct.Struct("<IBBBB")  # +8 = 34
_CONTROL_1_5 = struct.Struct("<BBBBHQ")  # +14 = 48
CONTROL_SIZES = (26, 34, 48)
CLOCK_HZ = 48_000_000  # dwClockFrequency: the unit of the payload headers' PTS/SCR
FRAMING_FID_EOF = 0x03  # bmFramingInfo: frame id toggles, end-of-frame marked


@dataclass(frozen=True)
class Mode:
    """One frame size of one format, with its intervals in 100 ns units (fastest first
    is not assumed: the first listed is the default, as in the descriptors)."""

    format_index: int  # 1-based, in descriptor order
    frame_index: int  # 1-based within its format
    fourcc: str  # "MJPG" or "YUYV"
    width: int
    height: int
    intervals: tuple[int, ...]
    max_frame_bytes: int

    @property
    def default_interval(self) -> int:
        return self.intervals[0]

    def nearest_interval(self, wanted: int) -> int:
        if wanted <= 0:
            return self.default_interval
        return min(self.intervals, key=lambda i: (abs(i - wanted), i))


@dataclass(frozen=True)
class StreamingControl:
    """``struct uvc_streaming_control``; fields the camera does not use stay zero."""

    bmHint: int = 0
    bFormatIndex: int = 0
    bFrameIndex: int = 0
    dwFrameInterval: int = 0
    wKeyFrameRate: int = 0
    wPFrameRate: int = 0
    wCompQuality: int = 0
    wCompWindowSize: int = 0
    wDelay: int = 0
    dwMaxVideoFrameSize: int = 0
    dwMaxPayloadTransferSize: int = 0
    dwClockFrequency: int = 0
    bmFramingInfo: int = 0
    bPreferedVersion: int = 0
    bMinVersion: int = 0
    bMaxVersion: int = 0

    def pack(self, length: int) -> bytes:
        """The first ``length`` bytes of the 48-byte (UVC 1.5) layout."""
        data = _CONTROL_1_0.pack(
            self.bmHint,
            self.bFormatIndex,
            self.bFrameIndex,
            self.dwFrameInterval,
            self.wKeyFrameRate,
            self.wPFrameRate,
            self.wCompQuality,
            self.wCompWindowSize,
            self.wDelay,
            self.dwMaxVideoFrameSize,
            self.dwMaxPayloadTransferSize,
        )
        data += _CONTROL_1_1.pack(
            self.dwClockFrequency,
            self.bmFramingInfo,
            self.bPreferedVersion,
            self.bMinVersion,
            self.bMaxVersion,
        )
        data += _CONTROL_1_5.pack(0, 0, 0, 0, 0, 0)
        return data[:length]

    @classmethod
    def unpack(cls, data: bytes) -> StreamingControl:
        """From 26, 34 or 48 bytes (anything shorter than 26 is refused)."""
        if len(data) < _CONTROL_1_0.size:
            raise ValueError(f"streaming control of {len(data)} bytes; at least 26 expected")
        values = list(_CONTROL_1_0.unpack_from(data))
        if len(data) >= 34:
            values += _CONTROL_1_1.unpack_from(data, 26)
        return cls(*values)


@dataclass
class Control:
    """One integer control: its limits, its value, and what a new value changes."""

    name: str
    size: int  # bytes on the wire (1, 2 or 4)
    minimum: int
    maximum: int
    default: int
    resolution: int = 1
    signed: bool = False
    info: int = INFO_GET_SET
    value: int | None = None
    on_change: Callable[[int], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.value is None:
            self.value = self.default

    def encode(self, value: int) -> bytes:
        return value.to_bytes(self.size, "little", signed=self.signed)

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data[: self.size], "little", signed=self.signed)

    def accepts(self, value: int) -> bool:
        if not self.minimum <= value <= self.maximum:
            return False
        return (value - self.minimum) % max(self.resolution, 1) == 0


def default_controls() -> dict[tuple[int, int], Control]:
    """(entity id, selector) -> control: the picture controls a conference camera offers.

    Ranges follow common webcams so host apps' sliders behave as users expect.
    Auto-exposure mode answers "aperture priority" only (8): exposure is the sensor
    pipeline's business, but hosts query the control f_uvc always advertises.
    """
    return {
        (PROCESSING_UNIT, 0x02): Control("brightness", 2, -64, 64, 0, signed=True),
        (PROCESSING_UNIT, 0x03): Control("contrast", 2, 0, 100, 50),
        (PROCESSING_UNIT, 0x07): Control("saturation", 2, 0, 100, 50),
        (PROCESSING_UNIT, 0x08): Control("sharpness", 2, 0, 100, 0),
        (CAMERA_TERMINAL, 0x02): Control("auto_exposure_mode", 1, 8, 8, 8, resolution=8),
        (CAMERA_TERMINAL, 0x0B): Control("zoom_absolute", 2, 100, 400, 100),
    }


@dataclass(frozen=True)
class Setup:
    """``struct usb_ctrlrequest`` of a SETUP event."""

    bRequestType: int
    bRequest: int
    wValue: int
    wIndex: int
    wLength: int

    @classmethod
    def unpack(cls, data: bytes) -> Setup:
        return cls(*struct.unpack_from("<BBHHH", data))

    @property
    def selector(self) -> int:
        return self.wValue >> 8

    @property
    def interface(self) -> int:
        return self.wIndex & 0xFF

    @property
    def entity(self) -> int:
        return self.wIndex >> 8

    @property
    def is_in(self) -> bool:
        return bool(self.bRequestType & USB_DIR_IN)


@dataclass(frozen=True)
class Reply:
    """What to send back: ``data`` for a GET, the length to accept for a SET, or a stall."""

    data: bytes = b""
    accept: int = 0
    stall: bool = False


STALL = Reply(stall=True)


class Negotiation:
    """Probe and commit on the streaming interface: what the host gets and picked."""

    def __init__(self, modes: list[Mode], max_payload: int) -> None:
        if not modes:
            raise ValueError("a UVC camera needs at least one mode")
        self.modes = modes
        self.max_payload = max_payload  # dwMaxPayloadTransferSize: bytes per (micro)frame
        self.probe = self._control_for(modes[0], modes[0].default_interval)
        self.committed: StreamingControl | None = None

    def mode(self, control: StreamingControl) -> Mode:
        for mode in self.modes:
            if (mode.format_index, mode.frame_index) == (
                control.bFormatIndex,
                control.bFrameIndex,
            ):
                return mode
        raise LookupError(f"no mode {control.bFormatIndex}/{control.bFrameIndex}")

    def _control_for(self, mode: Mode, interval: int) -> StreamingControl:
        return StreamingControl(
            bmHint=1,  # dwFrameInterval is what we keep fixed
            bFormatIndex=mode.format_index,
            bFrameIndex=mode.frame_index,
            dwFrameInterval=interval,
            dwMaxVideoFrameSize=mode.max_frame_bytes,
            dwMaxPayloadTransferSize=self.max_payload,
            dwClockFrequency=CLOCK_HZ,
            bmFramingInfo=FRAMING_FID_EOF,
        )

    def negotiate(self, wanted: StreamingControl) -> StreamingControl:
        """The supported control nearest to what the host proposed."""
        formats = sorted({m.format_index for m in self.modes})
        fmt = wanted.bFormatIndex if wanted.bFormatIndex in formats else formats[0]
        frames = [m for m in self.modes if m.format_index == fmt]
        mode = next((m for m in frames if m.frame_index == wanted.bFrameIndex), frames[0])
        return self._control_for(mode, mode.nearest_interval(wanted.dwFrameInterval))

    def get(self, request: int) -> StreamingControl | None:
        """The answer to a GET on PROBE (None: not a GET this control answers)."""
        first = self.modes[0]
        if request == GET_CUR:
            return self.probe
        if request == GET_DEF:
            return self._control_for(first, first.default_interval)
        mode = self.mode(self.probe)
        if request == GET_MIN:  # the fastest rate of the mode being probed
            return replace(self.probe, dwFrameInterval=min(mode.intervals))
        if request == GET_MAX:
            return replace(self.probe, dwFrameInterval=max(mode.intervals))
        return None


class RequestHandler:
    """Answers the class requests of one UVC function.

    ``control_interface`` / ``streaming_interface``: the interface numbers the gadget
    got when it was bound (configfs ``bInterfaceNumber``). ``on_commit`` is called with
    the committed control and its mode.
    """

    def __init__(
        self,
        negotiation: Negotiation,
        controls: dict[tuple[int, int], Control],
        control_interface: int,
        streaming_interface: int,
        on_commit: Callable[[StreamingControl, Mode], None] | None = None,
        streaming_size: int = 34,
    ) -> None:
        self.negotiation = negotiation
        self.streaming_size = streaming_size  # 34: the gadget declares UVC 1.1
        self.controls = controls
        self.control_interface = control_interface
        self.streaming_interface = streaming_interface
        self.on_commit = on_commit
        self.error_code = ERR_NONE
        self.stalls = 0
        self._pending: Setup | None = None  # the SET_CUR whose data stage comes next

    # -- SETUP ----------------------------------------------------------------------------

    def setup(self, req: Setup) -> Reply:
        self._pending = None
        kind = req.bRequestType & (USB_TYPE_MASK | USB_RECIP_MASK)
        if kind != (USB_TYPE_CLASS | USB_RECIP_INTERFACE):
            return self._stall(ERR_INVALID_REQUEST)
        if req.interface == self.streaming_interface:
            return self._streaming(req)
        if req.interface == self.control_interface:
            return self._control(req)
        return self._stall(ERR_INVALID_UNIT)

    def _streaming(self, req: Setup) -> Reply:
        if req.selector not in (VS_PROBE_CONTROL, VS_COMMIT_CONTROL):
            return self._stall(ERR_INVALID_CONTROL)
        if req.bRequest == SET_CUR:
            if req.wLength not in CONTROL_SIZES:
                return self._stall(ERR_INVALID_VALUE)
            return self._expect_data(req)
        if req.bRequest == GET_INFO:
            return self._ok(bytes([INFO_GET_SET]))
        if req.bRequest == GET_LEN:
            return self._ok(self.streaming_size.to_bytes(2, "little")[: req.wLength])
        if req.selector == VS_COMMIT_CONTROL:
            if req.bRequest != GET_CUR:
                return self._stall(ERR_INVALID_REQUEST)
            control = self.negotiation.committed or self.negotiation.probe
        else:
            answer = self.negotiation.get(req.bRequest)
            if answer is None:
                return self._stall(ERR_INVALID_REQUEST)
            control = answer
        return self._ok(control.pack(req.wLength))

    def _control(self, req: Setup) -> Reply:
        if req.entity == 0:  # the interface itself: only the request error code
            if req.selector != VC_REQUEST_ERROR_CODE_CONTROL:
                return self._stall(ERR_INVALID_CONTROL)
            if req.bRequest == GET_CUR:
                code, self.error_code = self.error_code, ERR_NONE
                return Reply(data=bytes([code])[: req.wLength])
            if req.bRequest == GET_INFO:
                return self._ok(bytes([INFO_GET]))
            return self._stall(ERR_INVALID_REQUEST)
        control = self.controls.get((req.entity, req.selector))
        if control is None:
            unit_known = any(entity == req.entity for entity, _ in self.controls)
            return self._stall(ERR_INVALID_CONTROL if unit_known else ERR_INVALID_UNIT)
        if req.bRequest == SET_CUR:
            if not control.info & 0x02 or req.wLength != control.size:
                return self._stall(ERR_INVALID_REQUEST)
            return self._expect_data(req)
        values = {
            GET_CUR: control.value,
            GET_MIN: control.minimum,
            GET_MAX: control.maximum,
            GET_RES: control.resolution,
            GET_DEF: control.default,
        }
        if req.bRequest in values:
            return self._ok(control.encode(int(values[req.bRequest] or 0))[: req.wLength])
        if req.bRequest == GET_INFO:
            return self._ok(bytes([control.info]))
        if req.bRequest == GET_LEN:
            return self._ok(control.size.to_bytes(2, "little")[: req.wLength])
        return self._stall(ERR_INVALID_REQUEST)

    def _expect_data(self, req: Setup) -> Reply:
        self._pending = req
        self.error_code = ERR_NONE
        return Reply(accept=req.wLength)

    # -- DATA (the data stage of a SET_CUR) ---------------------------------------------

    def data(self, payload: bytes) -> bool:
        """Apply the data stage of the last accepted SET_CUR; False if it was refused
        (the transfer has already completed: the host learns from the error code)."""
        req, self._pending = self._pending, None
        if req is None:
            self.error_code = ERR_WRONG_STATE
            return False
        if req.interface == self.streaming_interface:
            return self._set_streaming(req, payload)
        control = self.controls[(req.entity, req.selector)]
        if len(payload) < control.size:
            self.error_code = ERR_INVALID_VALUE
            return False
        value = control.decode(payload)
        if not control.accepts(value):
            self.error_code = ERR_OUT_OF_RANGE
            return False
        control.value = value
        if control.on_change is not None:
            control.on_change(value)
        return True

    def _set_streaming(self, req: Setup, payload: bytes) -> bool:
        try:
            wanted = StreamingControl.unpack(payload)
        except ValueError:
            self.error_code = ERR_INVALID_VALUE
            return False
        negotiated = self.negotiation.negotiate(wanted)
        if req.selector == VS_PROBE_CONTROL:
            self.negotiation.probe = negotiated
            return True
        self.negotiation.committed = negotiated
        if self.on_commit is not None:
            self.on_commit(negotiated, self.negotiation.mode(negotiated))
        return True

    # -- replies ----------------------------------------------------------------------------

    def _ok(self, data: bytes) -> Reply:
        self.error_code = ERR_NONE
        return Reply(data=data)

    def _stall(self, code: int) -> Reply:
        self.error_code = code
        self.stalls += 1
        return STALL
