"""The stream to the host, in process: what the VM cannot carry (the isochronous
payload). A real in-memory gadget node stands in for /dev/videoN; the clock is the
test's, so the pacing is checked exactly."""

from __future__ import annotations

import struct
from collections import deque

import cv2
import numpy as np

from appliance.hw.profile import load_profiles
from appliance.uvc.modes import modes_for
from appliance.uvc.protocol import (
    SET_CUR,
    Negotiation,
    RequestHandler,
    Setup,
    StreamingControl,
    default_controls,
)
from appliance.uvc.stream import (
    UVC_EVENT_CONNECT,
    UVC_EVENT_DATA,
    UVC_EVENT_DISCONNECT,
    UVC_EVENT_SETUP,
    UVC_EVENT_STREAMOFF,
    UVC_EVENT_STREAMON,
    FrameSlot,
    UvcFunction,
)


class MemoryNode:
    """The gadget node's contract, in memory: every queued frame is kept with the time
    it was queued, and is 'sent' at once."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.responses: list[bytes | None] = []
        self.frames: list[tuple[float, bytes]] = []
        self.format: tuple[str, int, int, int] | None = None
        self.buffers: list[bytearray] = []
        self.sent: deque[int] = deque()
        self.streaming = False

    def fileno(self) -> int:
        return -1

    def next_event(self) -> tuple[int, bytes] | None:
        return None

    def respond(self, data: bytes | None) -> None:
        self.responses.append(data)

    def start_stream(self, fourcc: str, width: int, height: int, sizeimage: int) -> int:
        self.format = (fourcc, width, height, sizeimage)
        self.buffers = [bytearray(sizeimage) for _ in range(4)]
        self.streaming = True
        return 4

    def buffer(self, index: int) -> bytearray:
        return self.buffers[index]

    def queue(self, index: int, bytesused: int) -> None:
        assert self.streaming
        self.frames.append((self.clock(), bytes(self.buffers[index][:bytesused])))
        self.sent.append(index)

    def sent_buffer(self) -> int | None:
        return self.sent.popleft() if self.sent else None

    def stop_stream(self) -> None:
        self.streaming = False

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> tuple[UvcFunction, MemoryNode, FrameSlot]:
    profile = next(p for p in load_profiles() if p.name == "generic-x86")
    assert profile.uvc is not None
    handler = RequestHandler(Negotiation(modes_for(profile.uvc), 3072), default_controls(), 0, 1)
    node = MemoryNode(clock)
    frames = FrameSlot()
    return UvcFunction(node, handler, frames, clock), node, frames


def setup_event(kind: int, request: int, selector: int, index: int, length: int) -> bytes:
    return struct.pack("<BBHHH", kind, request, selector << 8, index, length) + bytes(56)


def data_event(payload: bytes) -> bytes:
    return struct.pack("<i", len(payload)) + payload.ljust(60, b"\0")


def commit(function: UvcFunction, format_index: int, frame_index: int, interval: int) -> None:
    control = StreamingControl(
        bFormatIndex=format_index, bFrameIndex=frame_index, dwFrameInterval=interval
    ).pack(34)
    for selector in (1, 2):  # probe, then commit, as hosts do
        function.on_event(UVC_EVENT_SETUP, setup_event(0x21, SET_CUR, selector, 1, 34))
        function.on_event(UVC_EVENT_DATA, data_event(control))


def run_for(function: UvcFunction, clock: Clock, seconds: float, frames: FrameSlot) -> None:
    picture = np.zeros((360, 640, 3), np.uint8)
    end = clock.now + seconds
    while clock.now < end:
        picture[:] = int(clock.now * 1000) % 200  # a pipeline at 200 fps: always fresh
        frames.put(picture.copy())
        function.pump()
        clock.now += 0.005


def test_yuyv_frames_of_the_negotiated_size_at_the_negotiated_interval() -> None:
    clock = Clock()
    function, node, frames = make(clock)
    function.on_event(UVC_EVENT_CONNECT, bytes(64))
    commit(function, 2, 1, 666667)  # YUYV 640x480 at 15 fps
    assert not function.wants_frames()  # nothing asked yet: the pipeline's sink idles
    function.on_event(UVC_EVENT_STREAMON, bytes(64))
    assert function.wants_frames()
    assert node.format == ("YUYV", 640, 480, 640 * 480 * 2)

    run_for(function, clock, 2.0, frames)
    times = [t for t, _ in node.frames]
    assert len(times) in (30, 31)
    gaps = np.diff(times)
    assert np.all(np.abs(gaps - 0.0666667) <= 0.005 + 1e-9), gaps  # one clock step
    assert {len(data) for _, data in node.frames} == {640 * 480 * 2}
    yuyv = np.frombuffer(node.frames[-1][1], np.uint8).reshape(480, 640, 2)
    bgr = cv2.cvtColor(yuyv, cv2.COLOR_YUV2BGR_YUYV)
    assert bgr.shape == (480, 640, 3)


def test_mjpeg_frames_decode_at_the_negotiated_size_and_a_slow_pipeline_is_repeated() -> None:
    clock = Clock()
    function, node, frames = make(clock)
    commit(function, 1, 2, 333333)  # MJPEG 1280x720 at 30 fps
    function.on_event(UVC_EVENT_STREAMON, bytes(64))
    frames.put(np.full((360, 640, 3), 90, np.uint8))  # one picture, then the pipeline stalls
    for _ in range(200):  # 1 s
        function.pump()
        clock.now += 0.005
    assert len(node.frames) in (30, 31)  # the host still gets its 30 fps
    for _, data in node.frames[:3]:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (720, 1280, 3)
        assert abs(float(image.mean()) - 90) < 3


def test_host_picture_controls_change_the_frames_sent() -> None:
    clock = Clock()
    function, node, frames = make(clock)
    commit(function, 2, 1, 666667)
    function.on_event(UVC_EVENT_STREAMON, bytes(64))
    run_for(function, clock, 0.2, frames)
    function.on_event(UVC_EVENT_SETUP, setup_event(0x21, SET_CUR, 0x02, 2 << 8, 2))
    function.on_event(UVC_EVENT_DATA, data_event(struct.pack("<h", 40)))
    assert node.responses[-1] == bytes(2)  # the data stage accepted
    frames.put(np.full((360, 640, 3), 100, np.uint8))
    clock.now += 0.1
    function.pump()
    luma = np.frombuffer(node.frames[-1][1], np.uint8)[0::2]
    assert abs(float(luma.mean()) - (100 + 80) * 219 / 255 - 16) < 4  # +2 levels per step


def test_streamoff_and_disconnect_stop_the_stream() -> None:
    clock = Clock()
    function, node, frames = make(clock)
    commit(function, 2, 1, 666667)
    function.on_event(UVC_EVENT_STREAMON, bytes(64))
    run_for(function, clock, 0.5, frames)
    function.on_event(UVC_EVENT_STREAMOFF, bytes(64))
    sent = len(node.frames)
    assert not node.streaming and not function.wants_frames()
    run_for(function, clock, 0.5, frames)
    assert len(node.frames) == sent

    function.on_event(UVC_EVENT_STREAMON, bytes(64))  # the host opens it again
    run_for(function, clock, 0.5, frames)
    assert len(node.frames) > sent
    function.on_event(UVC_EVENT_DISCONNECT, bytes(64))  # cable pulled mid-stream
    assert not node.streaming and not function.streaming and not function.connected


def test_stalled_requests_are_answered_with_a_stall() -> None:
    clock = Clock()
    function, node, _ = make(clock)
    function.on_event(UVC_EVENT_SETUP, setup_event(0xA1, 0x81, 0x0F, 2 << 8, 2))  # hue
    function.on_event(UVC_EVENT_SETUP, bytes(64))  # all zero: a standard request
    function.on_event(0x08000077, bytes(64))  # an event type no kernel sends
    function.on_event(UVC_EVENT_DATA, data_event(b"\xff" * 60))  # data with no SET
    assert node.responses == [None, None]
    assert function.handler.stalls == 2
    assert function.events["unknown:0x8000077"] == 1


def test_a_setup_decoded_from_an_event_matches_the_kernel_layout() -> None:
    req = Setup.unpack(setup_event(0xA1, 0x81, 0x02, (2 << 8) | 0, 2))
    assert (req.selector, req.entity, req.interface, req.wLength, req.is_in) == (2, 2, 0, 2, True)
