"""Fuzzing the codec's boundary: the bitstream parser and the receiver (tests/fuzz.py).

The budgets come from the profile tests/fuzz.py loads (``make test``: a small fixed one;
``make fuzz``: 100,000 cases per target). Cases stay cheap: the valid stream is built
once, mutated per case, and the receiver's renderer is replaced by one that keeps every
check on the reference it is asked for but skips the warp (7 ms a frame at any size).
"""

from __future__ import annotations

import contextlib
import functools
import struct
import zlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.codec.bitstream import (
    HEADER_SIZE,
    MAX_ASSEMBLY_BYTES,
    BitstreamError,
    Codec,
    PacketType,
    Reference,
    Residual,
    parse,
)
from appliance.codec.headers import picture_size
from appliance.codec.keypoints import KeypointCodecModel
from appliance.codec.render import FaceRenderer
from appliance.codec.session import KEEP_LANDMARKS, Receiver
from tools.hostile.codec import forged_object, forged_reference, keypoints, valid_stream

pytestmark = pytest.mark.fuzz

W, H = 64, 48


@functools.cache
def model() -> KeypointCodecModel:
    return KeypointCodecModel.load()


@functools.cache
def stream() -> list[list[bytes]]:
    """A valid call: frame 0 is a reference (WebP: cheap to decode) and an intra packet."""
    return valid_stream(16, W, H, Codec.WEBP)


@functools.cache
def valid_datagrams() -> list[bytes]:
    return [d for frame in stream() for d in frame]


@functools.cache
def reference_parts() -> tuple[bytes, bytes]:
    """(picture, keypoint data) of the stream's reference, to mutate."""
    fragments = [parse(d).payload for d in stream()[0] if parse(d).type == PacketType.REFERENCE]
    body = b"".join(f.chunk for f in fragments)  # type: ignore[union-attr]
    ref = Reference.from_body(0, body)
    return ref.image, ref.keypoints


def recrc(datagram: bytes) -> bytes:
    """The datagram with its CRC made valid again: mutations then reach the payload rules."""
    if len(datagram) < HEADER_SIZE:
        return datagram
    head, payload = datagram[:7], datagram[HEADER_SIZE:]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes changed, inserted or cut."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 7))  # mostly byte changes: they keep the layout
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if op < 5 and out:
            out[at] = draw(st.integers(0, 255))
        elif op == 5:
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == 6:
            del out[at : at + draw(st.integers(1, 8))]
        else:
            del out[at:]
    return bytes(out)


@st.composite
def mutated_datagram(draw: st.DrawFn) -> bytes:
    """A valid datagram mutated, mostly with its CRC made valid again."""
    datagrams = valid_datagrams()
    datagram = draw(mutated(datagrams[draw(st.integers(0, len(datagrams) - 1))]))
    return recrc(datagram) if draw(st.integers(0, 3)) else datagram


@given(st.binary(max_size=1500))
def test_parse_takes_any_bytes(data: bytes) -> None:
    with contextlib.suppress(BitstreamError):
        parse(data)


@given(st.data())
def test_parse_takes_mutated_datagrams(data: st.DataObject) -> None:
    datagram = data.draw(mutated_datagram())
    try:
        packet = parse(datagram)
    except BitstreamError:
        return
    assert packet.type in PacketType


@given(st.data())
def test_object_bodies_and_picture_headers_take_mutations(data: st.DataObject) -> None:
    image, keypoint_data = reference_parts()
    body = Reference(0, Codec.WEBP, W, H, 1, image, keypoint_data).to_body()
    for parse_body in (lambda b: Reference.from_body(0, b), Residual.from_body):
        with contextlib.suppress(BitstreamError):
            parse_body(data.draw(mutated(body)))
    codec = data.draw(st.sampled_from([Codec.WEBP, Codec.PNG, Codec.JPEG, Codec.AV1]))
    try:
        width, height = picture_size(codec, data.draw(mutated(image) | st.binary(max_size=64)))
    except BitstreamError:
        return
    assert width >= 1 and height >= 1


# ---- the receiver ------------------------------------------------------------------------


def fast_render(self: FaceRenderer, ref_id: int, landmarks: np.ndarray) -> np.ndarray:
    picture, _, _ = self.references[ref_id]  # what the real render looks up
    assert np.all(np.isfinite(landmarks))
    return picture.copy()


@st.composite
def forged_reference_datagrams(draw: st.DrawFn) -> list[bytes]:
    image, keypoint_data = reference_parts()
    size = draw(st.sampled_from([(W, H), (W, H), (W + 8, H), (1, 1), (16383, 16383)]))
    codec = draw(st.sampled_from([Codec.WEBP, Codec.WEBP, Codec.PNG, Codec.AV1, Codec.JPEG]))
    image = draw(st.just(image) | mutated(image))
    keypoint_data = draw(st.just(keypoint_data) | mutated(keypoint_data))
    ref_id = draw(st.sampled_from([0, 1, 2, 200]))
    return forged_reference(image, codec, *size, ref_id=ref_id, keypoints=keypoint_data)


@st.composite
def forged_keypoints(draw: st.DrawFn) -> list[bytes]:
    coded = parse(stream()[0][-1]).payload.coded  # type: ignore[union-attr]
    coded = draw(st.just(coded) | mutated(coded))
    seq = draw(st.integers(0, 40) | st.integers(0, 65535))
    return [keypoints(draw(st.sampled_from([0, 0, 1, 7])), seq, coded, draw(st.booleans()))]


@st.composite
def forged_residual(draw: st.DrawFn) -> list[bytes]:
    body = bytes(draw(st.binary(min_size=14, max_size=14))) + draw(st.binary(max_size=64))
    kind = draw(st.sampled_from([PacketType.REFRESH_RESIDUAL, PacketType.REFERENCE]))
    return forged_object(kind, draw(st.integers(0, 255)), body)


def hostile_items() -> st.SearchStrategy[list[bytes]]:
    later = st.sampled_from([frame for frame in stream()[1:]])
    return st.one_of(
        later,
        mutated_datagram().map(lambda d: [d]),
        forged_reference_datagrams(),
        forged_keypoints(),
        forged_residual(),
        st.binary(max_size=200).map(lambda d: [d]),
    )


def check_bounds(receiver: Receiver) -> None:
    tracker = receiver.tracker
    assert receiver.stats.faults == 0
    assert tracker.assembly_bytes <= MAX_ASSEMBLY_BYTES and len(tracker._assemblies) <= 16
    assert len(tracker._pending) <= tracker.window and len(tracker.bank) <= tracker.bank_size
    assert len(receiver._landmarks) <= KEEP_LANDMARKS and len(receiver._references) <= 8
    if receiver.picture is not None:
        assert receiver.size == (W, H) and receiver.picture.shape == (H, W, 3)


@given(st.lists(hostile_items(), max_size=12))
def test_the_receiver_takes_any_sequence_of_datagrams(items: list[list[bytes]]) -> None:
    receiver = Receiver(model())
    with mock.patch.object(FaceRenderer, "render", fast_render):
        for datagram in stream()[0]:
            receiver.feed(datagram)
        assert receiver.stats.frames == 1
        for item in items:
            for datagram in item:
                receiver.feed(datagram)
                check_bounds(receiver)
        receiver.requests(now=1e9)
