"""The receiver against forged datagrams: nothing a datagram says takes the call down,
costs more than the bounds, or replaces the picture with one of another size.

The attacks are those found on loopback against ``appliance receive`` (issue 19), built
by ``tools.hostile.codec`` (which measures them against the real command)."""

from __future__ import annotations

import socket
import time
from unittest import mock

import cv2
import numpy as np
import pytest

from appliance.codec import pictures
from appliance.codec.bitstream import (
    MAX_ASSEMBLY_BYTES,
    BitstreamError,
    Codec,
    PacketType,
    Request,
    RequestKind,
    parse,
)
from appliance.codec.headers import picture_size
from appliance.codec.keypoints import KeypointCodecModel
from appliance.codec.pictures import decode_picture, encode_picture
from appliance.codec.receive import CallReceiver
from appliance.codec.session import Receiver
from tests.conftest import scaled
from tests.fuzz import corpus
from tools.hostile.codec import (
    forged_object,
    forged_reference,
    fragment_flood,
    jpeg_bomb,
    keypoints,
    oversized_keypoints,
    png_bomb,
    valid_stream,
    webp_bomb,
)

W, H = 160, 120


@pytest.fixture(scope="module")
def model() -> KeypointCodecModel:
    return KeypointCodecModel.load()


@pytest.fixture(scope="module")
def stream() -> list[list[bytes]]:
    return valid_stream(12, W, H)


def fed(model: KeypointCodecModel, frames: list[list[bytes]]) -> Receiver:
    receiver = Receiver(model)
    for frame in frames:
        for datagram in frame:
            receiver.feed(datagram)
    return receiver


def asked_for(receiver: Receiver) -> set[tuple[RequestKind, int]]:
    requests = [parse(d).payload for d in receiver.requests(now=1e9)]
    return {(r.kind, r.ref_id) for r in requests if isinstance(r, Request)}  # not REPORTs


@pytest.mark.parametrize("ref_id", [0, 5], ids=["its id", "another id"])
def test_a_forged_reference_of_another_size_leaves_the_call_as_it_was(model, stream, ref_id):
    receiver = fed(model, stream[:5])
    before = receiver.picture
    assert before is not None and receiver.stats.frames == 5
    for datagram in forged_reference(b"\x89PNG not a picture", Codec.PNG, 64, 64, ref_id):
        assert receiver.feed(datagram) is False
    assert receiver.picture is before and receiver.stats.errors == 1
    assert (RequestKind.REFERENCE, ref_id) in asked_for(receiver)  # answered, never raised
    for frame in stream[5:]:
        for datagram in frame:
            receiver.feed(datagram)
    assert receiver.stats.frames == len(stream) and receiver.stats.faults == 0
    assert receiver.picture is not None and receiver.picture.shape == (H, W, 3)


BOMBS = {
    "png": (Codec.PNG, lambda: png_bomb(rows=64), (32768, 32000)),
    "webp": (Codec.WEBP, webp_bomb, (16383, 16383)),
    "jpeg": (Codec.JPEG, jpeg_bomb, (30000, 30000)),
}


@pytest.fixture
def no_decoder():
    """Any decoder call fails the test: the header alone must refuse the picture."""
    called = AssertionError("a decoder saw a picture its header should have refused")
    with (
        mock.patch.object(cv2, "imdecode", side_effect=called),
        mock.patch.object(pictures, "_decode_av1", side_effect=called),
    ):
        yield


@pytest.mark.parametrize("name", BOMBS)
def test_a_picture_bomb_is_refused_by_its_header_before_decoding(name, no_decoder):
    codec, bomb, declared = BOMBS[name]
    data = bomb()
    assert picture_size(codec, data) == declared
    for size in ((W, H), None):  # of the stream's size; of no stated size
        with pytest.raises(BitstreamError, match=f"{declared[0]}x{declared[1]}"):
            decode_picture(codec, data, size)


@pytest.mark.parametrize("name", BOMBS)
def test_a_reference_bomb_changes_nothing_and_costs_no_time(model, stream, name):
    codec, bomb, (width, height) = BOMBS[name]
    receiver = fed(model, stream[:3])
    fresh = Receiver(model)  # no stream size yet: the receiver's own bound holds
    start = time.monotonic()
    for datagram in forged_reference(bomb(), codec, width, height, ref_id=0):
        receiver.feed(datagram)
        fresh.feed(datagram)
    assert time.monotonic() - start < scaled(1.0)  # decoded, they take many seconds
    assert receiver.stats.errors == fresh.stats.errors == 1
    assert fresh.renderer is None and fresh.size is None
    for datagram in stream[3][-1:]:
        assert receiver.feed(datagram)  # the real reference 0 still renders
    assert receiver.picture is not None and receiver.picture.shape == (H, W, 3)


def test_pictures_larger_or_smaller_than_the_stream_are_refused(model, stream):
    receiver = fed(model, stream[:2])
    picture = np.full((H // 2, W // 2, 3), 90, np.uint8)
    for codec in (Codec.WEBP, Codec.AV1):
        for size in ((W // 2, H // 2), (W * 2, H * 2)):
            image = encode_picture(cv2.resize(picture, size), 50, codec)
            for datagram in forged_reference(image, codec, *size, ref_id=7):
                receiver.feed(datagram)
    assert receiver.stats.errors == 4 and receiver.stats.references == 1
    assert receiver.size == (W, H) and 7 not in receiver.tracker.bank


def test_picture_headers_are_read_without_decoding(no_decoder):
    frame = np.random.default_rng(0).integers(0, 255, (77, 131, 3), np.uint8)
    alpha = np.dstack([frame, frame[..., 0]])
    coded = {
        "png": (Codec.PNG, cv2.imencode(".png", frame)[1]),
        "webp lossy": (Codec.WEBP, cv2.imencode(".webp", frame)[1]),
        "webp lossless": (
            Codec.WEBP,
            cv2.imencode(".webp", frame, [cv2.IMWRITE_WEBP_QUALITY, 101])[1],
        ),
        "webp vp8x": (Codec.WEBP, cv2.imencode(".webp", alpha)[1]),
        "jpeg": (Codec.JPEG, cv2.imencode(".jpg", frame)[1]),
    }
    for name, (codec, data) in coded.items():
        assert picture_size(codec, data.tobytes()) == (131, 77), name
        for cut in (0, 5, 20):
            with pytest.raises(BitstreamError):
                picture_size(codec, data.tobytes()[:cut])
    with pytest.raises(BitstreamError, match="not decoded"):
        picture_size(Codec.H264, b"\x00\x00\x00\x01")


def test_av1_sequence_header_gives_the_coded_size() -> None:
    data = encode_picture(np.zeros((77, 131, 3), np.uint8), 50, Codec.AV1)
    assert picture_size(Codec.AV1, data) == (136, 80)  # padded to 8, cropped by the receiver
    assert decode_picture(Codec.AV1, data, (131, 77)).shape == (77, 131, 3)
    for cut in (0, 1, 4, 8):
        with pytest.raises(BitstreamError):
            picture_size(Codec.AV1, data[:cut])


def test_a_fragment_flood_is_held_within_the_bounds(model, stream):
    receiver = fed(model, stream[:2])
    tracker = receiver.tracker
    peak = 0
    for datagram in fragment_flood(big=4, bounded=60):
        receiver.feed(datagram)
        peak = max(peak, tracker.assembly_bytes)
    assert 0 < peak <= MAX_ASSEMBLY_BYTES and len(tracker._assemblies) <= 16
    assert tracker.stats.oversized == 32 * 4  # objects over MAX_OBJECT: never held
    for datagram in stream[2]:
        receiver.feed(datagram)
    assert receiver.stats.frames == 3  # the call goes on


def test_oversized_keypoint_packets_are_refused(model, stream):
    receiver = fed(model, stream[:2])
    for datagram in oversized_keypoints(20):
        receiver.feed(datagram)
    assert receiver.tracker.stats.oversized == 20 and not receiver.tracker._pending


def test_decoded_landmarks_kept_for_residuals_stay_bounded(model, stream):
    receiver = fed(model, stream[:1])
    intra = parse(stream[0][-1]).payload
    for seq in range(0, 65536, 300):  # sequence jumps: each a restart the receiver follows
        receiver.feed(keypoints(0, seq, intra.coded))  # type: ignore[union-attr]
    assert receiver.stats.frames > 200 and len(receiver._landmarks) <= 64


def test_an_unexpected_error_is_counted_and_the_call_goes_on(model, stream):
    receiver = fed(model, stream[:2])
    assert receiver.renderer is not None
    with mock.patch.object(receiver.renderer, "render", side_effect=RuntimeError("bug")):
        for datagram in stream[2]:
            receiver.feed(datagram)  # never raises
    assert receiver.stats.faults == 1
    assert (RequestKind.INTRA, 0) in asked_for(receiver)
    for frame in stream[3:]:
        for datagram in frame:
            receiver.feed(datagram)
    intra = parse(stream[0][-1]).payload
    assert receiver.feed(keypoints(0, len(stream), intra.coded))  # type: ignore[union-attr]
    assert receiver.stats.frames == 3  # back at the next intra


def test_the_receive_loop_survives_whatever_one_datagram_does(stream):
    call = CallReceiver("udp://127.0.0.1:0")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with mock.patch.object(call.receiver, "feed", side_effect=MemoryError):
            for datagram in stream[0]:
                sender.sendto(datagram, ("127.0.0.1", call.port))
            time.sleep(0.1)
            call.poll(0.5)
        assert call.counters.faults == len(stream[0])
        for frame in stream[1:3]:
            for datagram in frame:
                sender.sendto(datagram, ("127.0.0.1", call.port))
        call.poll(0.5)
    finally:
        sender.close()
        call.close()
    assert call.counters.datagrams == sum(len(f) for f in stream[:3])


def replay(model: KeypointCodecModel, data: bytes) -> Receiver:
    """Feed a corpus file (u16 big-endian length, datagram, ...) and check every step."""
    receiver = Receiver(model)
    at = 0
    while at + 2 <= len(data):
        size = int.from_bytes(data[at : at + 2], "big")
        receiver.feed(data[at + 2 : at + 2 + size])
        at += 2 + size
        assert receiver.stats.faults == 0
        if receiver.picture is not None:
            assert receiver.size is not None
            assert receiver.picture.shape == (receiver.size[1], receiver.size[0], 3)
    return receiver


INPUTS = [p for p in corpus("codec") if p.suffix == ".bin"]  # not the README


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_inputs_that_once_broke_the_receiver(model, path):
    receiver = replay(model, path.read_bytes())
    if path.name.startswith("call-"):  # a real call around the attack: it went on
        assert receiver.stats.frames >= 2


def test_the_corpus_is_there():
    assert len(INPUTS) >= 4


def test_forged_residual_objects_are_refused(model, stream):
    receiver = fed(model, stream[:2])
    from appliance.codec.bitstream import Region, Residual, ResidualMode

    seq = parse(stream[1][-1]).seq
    for region, box, image in [
        (Region.MOUTH, (0, 0, 16383, 16383), webp_bomb()),
        (Region.MOUTH, (0, 0, W, H), webp_bomb()),  # a box of the frame: a bank entry too big
        (Region.MOUTH, (10, 10, 20, 20), webp_bomb()),
        (Region.MOUTH, (10, 10, 20, 20), b"junk"),
    ]:
        body = Residual(seq, 0, region, Codec.WEBP, ResidualMode.REPLACE, box, image).to_body()
        for datagram in forged_object(PacketType.REFRESH_RESIDUAL, 3, body):
            receiver.feed(datagram)
    assert receiver.stats.errors == 4 and receiver.stats.residuals == 0
    assert (RequestKind.REFRESH, 0) in asked_for(receiver)


def test_a_progressive_jpeg_is_refused_before_decoding() -> None:
    picture = np.full((H, W, 3), 128, np.uint8)
    ok, baseline = cv2.imencode(".jpg", picture)
    ok2, progressive = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and ok2
    assert picture_size(Codec.JPEG, baseline.tobytes()) == (W, H)
    with pytest.raises(BitstreamError, match="only sequential"):
        picture_size(Codec.JPEG, progressive.tobytes())
