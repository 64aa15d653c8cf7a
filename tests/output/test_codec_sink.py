"""The codec sink over real UDP on the loopback: datagrams out, REQUESTs back in."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import numpy as np
import pytest
from pydantic import ValidationError

from appliance.codec.bitstream import Packetizer, PacketType, RequestKind, parse
from appliance.codec.session import Receiver
from appliance.config.schema import Config
from appliance.frame import Frame
from appliance.output.codec import CodecSink
from tests.codec.conftest import read_clip


@dataclass
class FaceLike:
    """What the sink reads of a tracked face."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    iris: np.ndarray | None


def frames(count: int = 20) -> list[Frame]:
    clip = read_clip("lp_d20", count)
    out = []
    for index, (image, points, iris) in enumerate(
        zip(clip.frames, clip.landmarks, clip.iris, strict=True)
    ):
        lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        face = FaceLike((lo[0], lo[1], hi[0], hi[1]), points, np.stack([iris] * 5, axis=1))
        out.append(Frame(image, index, meta={"faces": [face]}))
    return out


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    return sock


def received(sock: socket.socket) -> list[tuple[bytes, tuple[str, int]]]:
    out = []
    sock.settimeout(0.2)
    try:
        while True:
            out.append(sock.recvfrom(65535))
    except TimeoutError:
        return out


def sink_to(port: int, **codec: object) -> CodecSink:
    sink = CodecSink()
    sink.configure(Config.model_validate({"codec": {"enabled": True,
                   "destination": f"udp://127.0.0.1:{port}", **codec}}))  # fmt: skip
    return sink


def test_the_sink_streams_a_call_a_receiver_can_show():
    sock = listener()
    sink = sink_to(sock.getsockname()[1])
    receiver = Receiver()
    try:
        for frame in frames():
            assert sink.consume(frame)
            for datagram, _ in received(sock):
                receiver.feed(datagram)
    finally:
        sink.close()
        sock.close()
    assert receiver.stats.frames == 20 and receiver.stats.references >= 1
    assert receiver.picture is not None and receiver.picture.shape == (480, 480, 3)
    stats = sink.stats()
    assert stats["datagrams"] > 20 and stats["kbps"] > 0 and stats["send_errors"] == 0


def test_a_request_sent_back_to_the_sink_gets_a_new_reference():
    sock = listener()
    sink = sink_to(sock.getsockname()[1], floor=0.0)  # the loop alone would never refresh
    clip = frames(6)
    try:
        sink.consume(clip[0])
        first = received(sock)
        assert any(parse(d).type == PacketType.REFERENCE for d, _ in first)
        sink.consume(clip[1])
        assert not any(parse(d).type == PacketType.REFERENCE for d, _ in received(sock))
        _, sink_address = first[0]
        assert sink.sender is not None
        request = Packetizer(sink.sender.stream).request(RequestKind.REFRESH, 0, 0, 0)
        sock.sendto(request, sink_address)
        time.sleep(0.05)
        sink.consume(clip[2])
        kinds = [parse(d).type for d, _ in received(sock)]
        assert PacketType.REFERENCE in kinds and PacketType.KEYPOINTS_INTRA in kinds
        assert sink.stats()["references"] == 2
    finally:
        sink.close()
        sock.close()


def test_nobody_listening_never_stops_the_camera():
    free = listener()
    port = free.getsockname()[1]
    free.close()  # nobody on this port: the kernel answers with ICMP port unreachable
    sink = sink_to(port)
    try:
        for frame in frames(8):
            sink.consume(frame)  # must not raise
    finally:
        sink.close()
    assert sink.sender is not None and sink.sender.stats.frames == 8


def test_a_disabled_sink_sends_nothing_and_bad_destinations_are_refused():
    sink = CodecSink()
    sink.configure(Config())
    assert not sink.wants_frames() and sink.consume(frames(1)[0]) is False
    assert sink.sock is None
    for bad in ("tcp://127.0.0.1:5004", "udp://127.0.0.1", "udp://:5004", "udp://h:70000"):
        with pytest.raises(ValidationError, match=r"udp://HOST:PORT|port"):
            Config.model_validate({"codec": {"destination": bad}})


def test_frames_without_a_face_are_skipped_and_counted():
    sock = listener()
    sink = sink_to(sock.getsockname()[1])
    try:
        faceless = Frame(frames(1)[0].image, 0)
        assert sink.consume(faceless) is False
        assert received(sock) == []
        assert sink.sender is not None and sink.sender.stats.skipped == 1
    finally:
        sink.close()
        sock.close()
