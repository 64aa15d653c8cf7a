"""The daemon's side of the UVC function: the gadget's video node, its events, and the
processed frames queued at the interval the host committed.

One thread runs :meth:`UvcFunction.run`: it polls the node for events (POLLPRI:
CONNECT, DISCONNECT, STREAMON, STREAMOFF, SETUP, DATA) and, while streaming, for
buffers the driver has sent (POLLOUT). A frame is rendered from the newest processed
picture once per committed interval, so the host gets the rate it asked for whatever
the pipeline's rate (a slow pipeline repeats its last picture; a fast one is sampled).
While no host streams, nothing is rendered and :meth:`UvcFunction.wants_frames` is
False, so the pipeline's UVC sink idles.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import select
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.platform import v4l2
from appliance.uvc.picture import Adjust, render
from appliance.uvc.protocol import Mode, RequestHandler, Setup

log = logging.getLogger(__name__)

UVC_EVENT_CONNECT = v4l2.V4L2_EVENT_PRIVATE_START + 0
UVC_EVENT_DISCONNECT = v4l2.V4L2_EVENT_PRIVATE_START + 1
UVC_EVENT_STREAMON = v4l2.V4L2_EVENT_PRIVATE_START + 2
UVC_EVENT_STREAMOFF = v4l2.V4L2_EVENT_PRIVATE_START + 3
UVC_EVENT_SETUP = v4l2.V4L2_EVENT_PRIVATE_START + 4
UVC_EVENT_DATA = v4l2.V4L2_EVENT_PRIVATE_START + 5
EVENT_NAMES = {
    UVC_EVENT_CONNECT: "connect",
    UVC_EVENT_DISCONNECT: "disconnect",
    UVC_EVENT_STREAMON: "streamon",
    UVC_EVENT_STREAMOFF: "streamoff",
    UVC_EVENT_SETUP: "setup",
    UVC_EVENT_DATA: "data",
}
BUFFERS = 4
PICTURE_CONTROLS = ("brightness", "contrast", "saturation", "sharpness")
IDLE_POLL_S = 0.1


class uvc_request_data(ctypes.Structure):
    _fields_ = [("length", ctypes.c_int32), ("data", ctypes.c_uint8 * 60)]


UVCIOC_SEND_RESPONSE = v4l2._IOW("U", 1, uvc_request_data)


class GadgetNode(Protocol):
    """What the loop needs of the gadget's video node (real: :class:`V4L2GadgetNode`)."""

    def fileno(self) -> int: ...

    def next_event(self) -> tuple[int, bytes] | None: ...

    def respond(self, data: bytes | None) -> None: ...

    def start_stream(self, fourcc: str, width: int, height: int, sizeimage: int) -> int: ...

    def buffer(self, index: int) -> Any: ...

    def queue(self, index: int, bytesused: int) -> None: ...

    def sent_buffer(self) -> int | None: ...

    def stop_stream(self) -> None: ...

    def close(self) -> None: ...


class V4L2GadgetNode:
    """The UVC gadget's ``/dev/videoN`` (driver ``g_uvc``): V4L2 output + UVC events."""

    def __init__(self, path: str) -> None:
        self.device = v4l2.Device(path, v4l2.V4L2_BUF_TYPE_VIDEO_OUTPUT)
        for event in EVENT_NAMES:
            self.device.subscribe_event(event)

    def fileno(self) -> int:
        return self.device.fileno()

    def next_event(self) -> tuple[int, bytes] | None:
        event = self.device.dequeue_event()
        if event is None:
            return None
        return int(event.type), bytes(event.u.data)

    def respond(self, data: bytes | None) -> None:
        reply = uvc_request_data(length=-errno.EL2HLT if data is None else len(data))
        if data:
            ctypes.memmove(reply.data, data, min(len(data), 60))
        self.device._ioctl("UVCIOC_SEND_RESPONSE", UVCIOC_SEND_RESPONSE, reply)

    def start_stream(self, fourcc: str, width: int, height: int, sizeimage: int) -> int:
        self.device.set_format(width, height, fourcc, sizeimage)
        count = self.device.allocate(BUFFERS)
        # At once, not after the first frame: f_uvc holds the status stage of the host's
        # SET_INTERFACE until this STREAMON, and the host gives up after 5 s.
        self.device.stream_on()
        return count

    def buffer(self, index: int) -> Any:
        return self.device.buffer(index)

    def queue(self, index: int, bytesused: int) -> None:
        self.device.queue(index, bytesused)

    def sent_buffer(self) -> int | None:
        done = self.device.dequeue(0.0, copy=False)
        return None if done is None else done.index

    def stop_stream(self) -> None:
        self.device.stop()

    def close(self) -> None:
        self.device.close()


def find_gadget_node(sys_root: str = "/sys") -> str | None:
    """The ``/dev/videoN`` of the UVC function, found by its driver name."""
    for node in sorted(Path(sys_root, "class", "video4linux").glob("video*")):
        path = f"/dev/{node.name}"
        try:
            with v4l2.Device(path, v4l2.V4L2_BUF_TYPE_VIDEO_OUTPUT) as dev:
                if bytes(dev.querycap().driver).rstrip(b"\0") == b"g_uvc":
                    return path
        except OSError:
            continue
    return None


class FrameSlot:
    """The newest processed picture (newest wins; nothing queues up)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._image: np.ndarray | None = None

    def put(self, image: np.ndarray) -> None:
        with self._lock:
            self._image = image

    def get(self) -> np.ndarray | None:
        with self._lock:
            return self._image


class UvcFunction:
    """Runs one UVC function: requests, stream state, and the frames to the host."""

    def __init__(
        self,
        node: GadgetNode,
        handler: RequestHandler,
        frames: FrameSlot,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.clock = clock
        self.handler = handler
        self.frames = frames
        self.connected = False
        self.streaming = False
        self.mode: Mode | None = None
        self.interval_s = 0.0
        self.events: Counter[str] = Counter()
        self.sent = 0
        self.dropped = 0  # frames that could not be rendered or did not fit
        self._free: list[int] = []
        self._next_frame = 0.0
        self._sizeimage = 0

    # -- the loop ---------------------------------------------------------------------------

    def wants_frames(self) -> bool:
        return self.streaming

    def run(self, stop: threading.Event) -> None:
        poller = select.poll()
        while not stop.is_set():
            wait = IDLE_POLL_S
            if self.streaming and self._free:
                wait = min(wait, max(0.0, self._next_frame - self.clock()))
            # Sent buffers (POLLOUT) matter only while streaming; an idle output node is
            # always "writable", which would make this loop spin.
            poller.register(
                self.node.fileno(), select.POLLPRI | (select.POLLOUT if self.streaming else 0)
            )
            ready = poller.poll(round(wait * 1000))
            if any(mask & select.POLLPRI for _, mask in ready):
                self.drain_events()
            if self.streaming:
                self.pump()

    def drain_events(self) -> None:
        while True:
            event = self.node.next_event()
            if event is None:
                return
            self.on_event(*event)

    def on_event(self, kind: int, data: bytes) -> None:
        name = EVENT_NAMES.get(kind, f"unknown:{kind:#x}")
        self.events[name] += 1
        if kind == UVC_EVENT_SETUP:
            reply = self.handler.setup(Setup.unpack(data))
            if reply.stall:
                self.node.respond(None)
            else:
                self.node.respond(bytes(reply.accept) if reply.accept else reply.data)
        elif kind == UVC_EVENT_DATA:
            request = uvc_request_data.from_buffer_copy(data[: ctypes.sizeof(uvc_request_data)])
            length = max(0, min(int(request.length), 60))
            self.handler.data(bytes(request.data)[:length])
        elif kind == UVC_EVENT_CONNECT:
            self.connected = True
        elif kind == UVC_EVENT_DISCONNECT:
            self.connected = False
            self._stop_stream()
        elif kind == UVC_EVENT_STREAMON:
            self._start_stream()
        elif kind == UVC_EVENT_STREAMOFF:
            self._stop_stream()
        log.debug("uvc event %s", name)

    # -- streaming --------------------------------------------------------------------------

    def _start_stream(self) -> None:
        if self.streaming:
            self._stop_stream()
        negotiation = self.handler.negotiation
        control = negotiation.committed or negotiation.probe
        mode = negotiation.mode(control)
        self.mode = mode
        self.interval_s = control.dwFrameInterval / 1e7
        self._sizeimage = mode.max_frame_bytes
        count = self.node.start_stream(mode.fourcc, mode.width, mode.height, self._sizeimage)
        self._free = list(range(count))
        self._next_frame = self.clock()
        self.streaming = True
        log.info(
            "host streams %s %dx%d at %.2f fps",
            mode.fourcc,
            mode.width,
            mode.height,
            1 / self.interval_s,
        )

    def _stop_stream(self) -> None:
        if not self.streaming:
            return
        self.streaming = False
        self._free = []
        try:
            self.node.stop_stream()
        except OSError as exc:  # the host or the UDC went away first
            log.info("uvc stream stop: %s", exc)
        log.info("host stopped streaming after %d frames", self.sent)

    def pump(self) -> None:
        """Reap sent buffers; queue the next frame when its time has come."""
        while True:
            try:
                index = self.node.sent_buffer()
            except OSError as exc:
                log.warning("uvc: %s; stopping the stream", exc)
                self._stop_stream()
                return
            if index is None:
                break
            self._free.append(index)
        now = self.clock()
        if not self._free or now < self._next_frame:
            return
        # Keep the cadence; after a stall, restart it instead of bursting to catch up.
        self._next_frame = max(self._next_frame + self.interval_s, now)
        image = self.frames.get()
        if image is None or self.mode is None:
            return
        index = self._free.pop(0)
        try:
            data = render(
                image,
                self.mode.fourcc,
                self.mode.width,
                self.mode.height,
                self._sizeimage,
                self.adjust,
            )
            if len(data) > self._sizeimage:
                raise ValueError(f"frame of {len(data)} bytes > buffer {self._sizeimage}")
            self.node.buffer(index)[: len(data)] = data
            self.node.queue(index, len(data))
        except (ValueError, OSError) as exc:
            self._free.append(index)
            self.dropped += 1
            if self.dropped <= 5 or self.dropped % 100 == 0:
                log.warning("uvc frame dropped (%d so far): %s", self.dropped, exc)
            return
        self.sent += 1

    @property
    def adjust(self) -> Adjust:
        """The host's picture controls, read per frame (a SET_CUR shows on the next)."""
        values = {c.name: c.value for c in self.handler.controls.values()}
        return Adjust(**{f: v for f in PICTURE_CONTROLS if (v := values.get(f)) is not None})

    # -- status -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        mode = self.mode
        return {
            "connected": self.connected,
            "streaming": self.streaming,
            "mode": None
            if mode is None
            else {
                "format": mode.fourcc,
                "width": mode.width,
                "height": mode.height,
                "fps": round(1 / self.interval_s, 2) if self.interval_s else None,
            },
            "frames_sent": self.sent,
            "frames_dropped": self.dropped,
            "stalls": self.handler.stalls,
            "events": dict(self.events),
            "controls": {c.name: c.value for c in self.handler.controls.values()},
        }
