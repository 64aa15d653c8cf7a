"""The codec sink over real UDP on the loopback: datagrams out, REQUESTs back in, and a
camera that goes on whatever the network does."""

from __future__ import annotations

import socket
import time

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from appliance.codec.bitstream import MTU, Packetizer, PacketType, RequestKind, parse
from appliance.codec.session import Receiver
from appliance.config.schema import Config
from appliance.frame import Frame
from appliance.output.codec import CodecSink, CodecSinkSettings, lead_face
from appliance.vision.stage import Face
from tests.codec.conftest import read_clip


def face(landmarks: np.ndarray, iris: np.ndarray | None = None) -> Face:
    lo, hi = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    rims = None if iris is None else np.stack([iris] * 5, axis=1)  # (2, 5, 2): centre first
    box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    return Face(0, box, 1.0, landmarks.astype(np.float32), rims)


def frames(count: int) -> list[Frame]:
    """Real frames of a talking head, with the tracker's landmarks as the align stage's
    faces (lp_d20: 480x480)."""
    clip = read_clip("lp_d20", count)
    triples = zip(clip.frames, clip.landmarks, clip.iris, strict=True)
    return [
        Frame(image, index, meta={"faces": [face(points, iris)]})
        for index, (image, points, iris) in enumerate(triples)
    ]


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def received(sock: socket.socket, wait: float = 0.2) -> list[tuple[bytes, tuple[str, int]]]:
    """Every datagram that arrives until the line has been quiet for ``wait`` s."""
    out = []
    sock.settimeout(wait)
    try:
        while True:
            out.append(sock.recvfrom(65535))
    except TimeoutError:
        return out


def config(port: int, **codec: object) -> Config:
    section = {"enabled": True, "destination": f"udp://127.0.0.1:{port}", **codec}
    return Config.model_validate({"codec": section})


def configured(port: int, **codec: object) -> CodecSink:
    sink = CodecSink()
    sink.configure(config(port, **codec))
    assert sink.wait_ready(60), sink.load_error  # the model loads off the frame path
    return sink


def kinds(datagrams: list[tuple[bytes, tuple[str, int]]]) -> list[PacketType]:
    return [parse(d).type for d, _ in datagrams]


@pytest.mark.parametrize("mode", ["keypoints", "hybrid"])
def test_the_sink_streams_a_call_a_receiver_shows_exactly(mode):
    sock = listener()
    sink = configured(sock.getsockname()[1], mode=mode)
    receiver = Receiver()
    try:
        for frame in frames(8):
            sink.consume(frame)  # the hybrid's first rung may send 7.5 to 25 fps
            got = received(sock)
            assert all(len(d) <= MTU for d, _ in got)
            held = set(receiver.streams.pictures)  # the hybrid paces its picture
            for datagram, _ in got:
                receiver.feed(datagram)
            assert sink.sender is not None and sink.sender.shown is not None
            if receiver.picture is None:  # the hybrid's first key, paced at the start rate
                assert mode == "hybrid" and frame.seq < 6
                continue
            if mode == "keypoints" or held:  # the loop's picture, once the detail is in
                assert np.array_equal(receiver.picture, sink.sender.shown)
    finally:
        sink.close()
        sock.close()
    assert receiver.stats.frames == 8 if mode == "keypoints" else receiver.stats.frames >= 4
    assert receiver.stats.references >= 1
    assert receiver.picture is not None and receiver.picture.shape == (480, 480, 3)
    stats = sink.stats()
    assert sink.sender is not None and stats["bytes"] == sink.sender.stats.total_bytes
    # a packet per frame sent (the hybrid's start rung sends 15 fps of 25) and the picture
    stream = sink.sender.stream_sender
    sent = 8 if stream is None else stream.counts["frames"]
    assert stats["frames"] == 8 and stats["send_errors"] == 0 and stats["datagrams"] >= sent + 1
    assert 0 < stats["kbps"] <= stats["bytes"] * 8 / 5 / 1000 + 0.01  # the last 5 s
    assert stats["references"] >= 1 and stats["mode"] == mode
    if mode == "keypoints":
        assert stats["last_quality"] >= 0.90 and stats["rung"] is None  # the default floor
    else:  # the rung the default rate starts on, no closed-loop figure
        assert stats["rung"] is not None and stats["last_quality"] is None


def test_a_request_sent_back_to_the_sink_brings_a_new_reference():
    sock = listener()
    # the loop alone never refreshes
    sink = configured(sock.getsockname()[1], mode="keypoints", floor=0.0)
    clip = frames(3)
    try:
        sink.consume(clip[0])
        first = received(sock)
        assert PacketType.REFERENCE in kinds(first)
        sink.consume(clip[1])
        assert PacketType.REFERENCE not in kinds(received(sock))
        assert sink.sender is not None and sink.sender.stats.references == 1
        sink_address = first[0][1]  # REQUESTs go back to the port the stream comes from
        request = Packetizer(sink.sender.stream).request(RequestKind.REFRESH, 0, 0, 0)
        sock.sendto(request, sink_address)
        time.sleep(0.05)
        sink.consume(clip[2])
        assert PacketType.REFERENCE in kinds(received(sock))
        assert sink.sender.stats.references == 2 and sink.stats()["requests"] == 1
    finally:
        sink.close()
        sock.close()


def test_a_sink_built_enabled_loads_its_model_off_the_frame_path():
    sock = listener()
    destination = f"udp://127.0.0.1:{sock.getsockname()[1]}"
    sink = CodecSink(CodecSinkSettings(enabled=True, destination=destination))  # as app.py
    try:
        assert sink.wait_ready(60) and sink.stats()["error"] is None
        assert sink.consume(frames(1)[0]) and received(sock)
    finally:
        sink.close()
        sock.close()


def test_nobody_listening_never_stops_the_camera():
    free = listener()
    port = free.getsockname()[1]
    free.close()  # nobody on this port: the kernel may answer with ICMP port unreachable
    sink = configured(port)
    try:
        for frame in frames(4):
            sink.consume(frame)  # must not raise
    finally:
        sink.close()
    assert sink.sender is not None and sink.sender.stats.frames == 4
    assert sink.stats()["frames"] == 4


def test_a_disabled_sink_sends_nothing_and_closes_its_socket():
    sock = listener()
    sink = configured(sock.getsockname()[1])
    frame = frames(1)[0]
    try:
        assert sink.wants_frames() and sink.consume(frame)
        assert received(sock)
        sink.configure(Config())  # the default: off
        assert not sink.wants_frames() and sink.sock is None
        assert sink.consume(frame) is False
        assert received(sock) == []
    finally:
        sink.close()
        sock.close()


@pytest.mark.parametrize(
    "bad", ["tcp://127.0.0.1:5004", "udp://127.0.0.1", "udp://:5004", "udp://h:70000", "h:1"]
)
def test_the_schema_refuses_a_destination_that_is_not_udp_host_port(bad):
    with pytest.raises(ValidationError, match=r"codec\.destination[\s\S]*udp://HOST:PORT"):
        Config.model_validate({"codec": {"destination": bad}})
    with pytest.raises(ValidationError, match=r"codec\.floor"):
        Config.model_validate({"codec": {"floor": 1.0}})


def test_frames_without_a_face_are_skipped_and_counted():
    sock = listener()
    sink = configured(sock.getsockname()[1], mode="keypoints")
    try:
        faceless = Frame(frames(1)[0].image, 0)
        assert sink.consume(faceless) is False
        assert received(sock) == []
        assert sink.sender is not None and sink.sender.stats.skipped == 1
    finally:
        sink.close()
        sock.close()


def test_the_hybrid_sends_the_room_when_nobody_is_in_it():
    sock = listener()
    sink = configured(sock.getsockname()[1], mode="hybrid")
    try:
        faceless = Frame(frames(1)[0].image, 0)
        assert sink.consume(faceless) is True
        assert PacketType.STREAM_INTRA in kinds(received(sock))
        assert sink.sender is not None and sink.sender.stats.skipped == 0
    finally:
        sink.close()
        sock.close()


def test_new_settings_or_a_new_size_start_a_new_stream():
    sock = listener()
    port = sock.getsockname()[1]
    sink = configured(port)
    clip = frames(3)
    try:
        sink.consume(clip[0])
        assert sink.sender is not None
        first = sink.sender.stream
        sink.configure(config(port, floor=0.7))
        sink.consume(clip[1])
        second = sink.sender.stream
        assert sink.sender.settings.floor == 0.7
        small = clip[2]
        small.image = cv2.resize(small.image, (240, 240))
        small.meta["faces"] = [face(np.asarray(small.meta["faces"][0].landmarks) / 2)]
        sink.consume(small)
        assert (sink.sender.width, sink.sender.height) == (240, 240)
        streams = [parse(d).stream for d, _ in received(sock)]
    finally:
        sink.close()
        sock.close()
    assert len({first, second, sink.sender.stream}) == 3  # (random ids: 1 in 20k may clash)
    assert {first, second, sink.sender.stream} == set(streams)


def test_the_lead_face_is_the_largest():
    small = np.zeros((468, 3))
    small[:, :2] = np.random.default_rng(0).uniform(100, 150, (468, 2))
    large = small * 2
    frame = Frame(np.zeros((480, 480, 3), np.uint8), 0, meta={"faces": [face(small), face(large)]})
    chosen = lead_face(frame)
    assert chosen is not None and np.allclose(chosen.landmarks, large)
    assert lead_face(Frame(frame.image, 1)) is None
