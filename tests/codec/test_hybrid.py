"""The hybrid's stream mode end to end on a real clip: the low-resolution stream, the
fusion, what the receiver shows, how it survives a bad network and forged objects."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.codec import metrics
from appliance.codec.bitstream import (
    BitstreamError,
    Codec,
    Packet,
    Packetizer,
    PacketType,
    Reference,
    pack,
    parse,
)
from appliance.codec.fusion import Fuser
from appliance.codec.hybrid import Rung, pack_stream_key, unpack_stream_key
from appliance.codec.lowres import LowResDecoder, LowResEncoder, low_size
from appliance.codec.session import CodecSettings, Receiver, Sender
from tests.codec.test_session import lossy_call

RUNG = Rung(side=120, qp=56)


def face_quality(clip, shown) -> float:
    pairs = zip(clip.frames, shown, clip.landmarks, strict=True)
    return float(np.mean([metrics.face_ms_ssim(f, s, p) for f, s, p in pairs]))


def run_stream(clip, rung: Rung, frames: int | None = None):
    width, height = clip.size
    sender = Sender(width, height, clip.fps, CodecSettings(rung=rung), stream=0x4859)
    receiver = Receiver()
    shown = []
    for index, frame in enumerate(clip.frames[:frames]):
        for datagram in sender.send(frame, clip.landmarks[index], index):
            assert len(datagram) <= sender.settings.mtu
            receiver.feed(datagram)
        assert receiver.picture is not None
        assert np.array_equal(receiver.picture, sender.shown), f"frame {index} differs"
        shown.append(receiver.picture.copy())
    sender.close()
    return sender, receiver, shown


def test_the_stream_round_trips_at_its_size_and_refuses_what_it_cannot_be(talking_head):
    size = low_size(*talking_head.size, 120)
    assert size == (120, 120)
    assert low_size(640, 360, 128) == (170, 96) and low_size(640, 360, 0) == (640, 360)
    encoder, decoder = LowResEncoder(size, 50), LowResDecoder(size)
    first = encoder.encode(talking_head.frames[0])
    assert first.key and not first.data.startswith(b"\x12\x00")  # delimiter stripped
    with pytest.raises(BitstreamError, match="before any key frame"):
        decoder.decode(encoder.encode(talking_head.frames[1]).data, key=False)
    picture = decoder.decode(first.data, key=True)
    assert picture.shape == (120, 120, 3)
    second = encoder.encode(talking_head.frames[1])
    assert not second.key and len(second.data) < len(first.data) / 4
    assert decoder.decode(second.data, key=False).shape == (120, 120, 3)
    with pytest.raises(BitstreamError, match="declares 120x120"):
        LowResDecoder((64, 64)).decode(first.data, key=True)  # sizes checked first
    with pytest.raises(BitstreamError):
        decoder.decode(b"\x32\x05garbage", key=False)
    with pytest.raises(BitstreamError, match="before any key frame"):
        decoder.decode(second.data, key=False)  # a failed decode needs a key again
    encoder.close()
    with pytest.raises(ValueError):
        LowResEncoder((121, 120), 50)
    with pytest.raises(ValueError):
        LowResEncoder((120, 120), 64)


def test_fusion_shows_the_reference_where_it_agrees_and_the_real_frame_where_not(talking_head):
    reference = talking_head.frames[0]
    height, width = reference.shape[:2]
    # the camera moved 3 px, and a hand (a dark square) covers part of the frame now
    current = np.roll(reference, 3, axis=1).copy()
    current[300:420, 40:160] = (40, 200, 230)  # a bright hand on the dark background
    size = low_size(width, height, 120)
    low = cv2.resize(current, size, interpolation=cv2.INTER_AREA)
    fused, gate = Fuser(reference, size).fuse(low)
    upscaled = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    box = metrics.face_box(talking_head.landmarks[0], width, height)
    x0, y0, x1, y1 = box
    face = np.s_[y0:y1, x0:x1]
    error_fused = np.abs(fused[face].astype(int) - current[face]).mean()
    error_upscaled = np.abs(upscaled[face].astype(int) - current[face]).mean()
    assert error_fused < 0.8 * error_upscaled  # the reference's detail, moved right
    assert gate[80:100, 14:36].mean() < 0.2  # the hand: the real frame, not the reference
    assert gate[y0 // 4 : y1 // 4, x0 // 4 : x1 // 4].mean() > 0.7
    assert Fuser(reference, (width, height)).fuse(reference)[0] is reference  # full size


def test_the_receiver_shows_exactly_what_the_sender_fused(talking_head):
    sender, receiver, shown = run_stream(talking_head, RUNG, frames=50)
    stream = sender.stream_sender
    assert stream is not None
    assert stream.counts == {"pictures": 1, "keys": 1, "frames": 50}
    assert receiver.stats.frames == 50 and receiver.stats.errors == 0
    assert sender.stats.total_bytes == sender.stats.stream_bytes == sum(stream.bytes.values())
    # fewer bytes per frame than a keypoint packet once the stream runs
    assert stream.bytes["frames"] / 50 < 60
    clip = type(talking_head)(talking_head.name, talking_head.fps, talking_head.frames[:50],
                              talking_head.landmarks[:50], talking_head.iris[:50])  # fmt: skip
    # the same stream, upscaled without the picture: what the fusion adds
    encoder, decoder = LowResEncoder((120, 120), RUNG.qp, clip.fps), LowResDecoder((120, 120))
    upscaled = []
    for frame in clip.frames:
        coded = encoder.encode(frame)
        low = decoder.decode(coded.data, coded.key)
        upscaled.append(cv2.resize(low, clip.size, interpolation=cv2.INTER_CUBIC))
    encoder.close()
    assert face_quality(clip, shown) > face_quality(clip, upscaled) + 0.01
    assert face_quality(clip, shown) > 0.9


def test_a_coarser_rung_costs_fewer_bits(talking_head):
    fine = run_stream(talking_head, Rung(120, 40), frames=30)[0]
    coarse = run_stream(talking_head, Rung(120, 60, fps=12.5), frames=30)[0]
    assert coarse.stats.total_bytes < fine.stats.total_bytes
    assert coarse.stream_sender is not None and coarse.stream_sender.counts["frames"] == 15


def test_the_stream_survives_loss_reordering_and_garbage(talking_head):
    width, height = talking_head.size
    sender = Sender(width, height, talking_head.fps, CodecSettings(rung=RUNG), stream=0x0BAD)
    receiver = Receiver(request_interval=0.2)
    lossy_until = 40
    exact_after = lossy_call(sender, receiver, talking_head, lossy_until, seed=5, frames=80)
    sender.close()
    assert receiver.tracker.stats.garbage > 0 and receiver.stats.requests > 0
    assert receiver.stats.faults == 0
    assert exact_after is not None and exact_after - lossy_until <= 8


def stream_key(ref_id: int, image: bytes, data: bytes, size=(480, 480)) -> list[bytes]:
    packets = Packetizer(0x4859)
    ref = Reference(ref_id, Codec.AV1_STREAM, *size, 0, image, data)
    return packets.reference(ref, 0)


def test_forged_stream_keys_are_refused_before_decoding(talking_head):
    encoder = LowResEncoder((120, 120), 50)
    key = encoder.encode(talking_head.frames[0]).data
    encoder.close()
    receiver = Receiver()
    forged = [
        stream_key(1, key, pack_stream_key(0, (240, 240))),  # the data says another size
        stream_key(2, key, pack_stream_key(0, (960, 120))),  # wider than its frame
        stream_key(3, key, b"\x00"),  # truncated key data
        stream_key(4, b"\x0a\x0bnot av1 at all", pack_stream_key(0, (120, 120))),
    ]
    for datagrams in forged:
        for datagram in datagrams:
            receiver.feed(datagram)
    assert receiver.stats.errors == 4 and receiver.stats.faults == 0
    assert not receiver.streams.keys  # nothing kept
    for datagram in stream_key(5, key, pack_stream_key(0, (120, 120))):
        receiver.feed(datagram)
    assert receiver.streams.has_key(5)
    # a frame naming it shows the key (upscaled: its picture 0 is missing, and asked for)
    intra = Packetizer(0x4859).stream_frame(b"", True, 5, 0)
    assert receiver.feed(intra) and receiver.picture is not None
    assert receiver.picture.shape == (480, 480, 3)
    assert any(parse(r).payload.ref_id == 0 for r in receiver.requests(now=10.0))
    with pytest.raises(BitstreamError, match="exceeds"):
        unpack_stream_key(pack_stream_key(0, (500, 100)), (480, 480))


def test_a_version_2_datagram_is_refused_by_name():
    datagram = bytearray(pack(Packet(PacketType.REQUEST, 1, 0, 0, parse(
        Packetizer(1).request(1, 0, 0, 0)).payload)))  # fmt: skip
    datagram[0] = 2 << 4 | PacketType.KEYPOINTS_INTRA
    with pytest.raises(BitstreamError, match="unsupported version 2"):
        parse(bytes(datagram))


def test_a_rung_without_a_picture_sends_the_stream_alone(talking_head):
    sender, receiver, shown = run_stream(talking_head, Rung(120, 56, picture_quality=0), 20)
    stream = sender.stream_sender
    assert stream is not None and stream.counts["pictures"] == 0 and stream.bytes["picture"] == 0
    assert receiver.streams.pictures == {} and not receiver.streams.missing  # nothing asked
    assert shown[-1].shape == (480, 480, 3)


def test_a_frame_larger_than_a_datagram_goes_in_parts(talking_head):
    width, height = talking_head.size
    settings = CodecSettings(rung=Rung(240, 30), mtu=200)  # fine frames, small datagrams
    sender = Sender(width, height, talking_head.fps, settings, stream=0x5050)
    receiver = Receiver()
    kinds = []
    for index, frame in enumerate(talking_head.frames[:12]):
        for datagram in sender.send(frame, talking_head.landmarks[index], index):
            assert len(datagram) <= 200
            kinds.append(parse(datagram).type)
            receiver.feed(datagram)
        assert np.array_equal(receiver.picture, sender.shown), f"frame {index}"
    sender.close()
    assert PacketType.STREAM_PART in kinds and sender.stream_sender.counts["keys"] == 1
    assert receiver.stats.frames == 12 and receiver.stats.errors == 0
