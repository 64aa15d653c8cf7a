"""Keypoint codec bitstream: packets, corruption, and the receiver's loss/reorder logic."""

from __future__ import annotations

import contextlib
import itertools
import random
import struct
import zlib

import pytest

from appliance.codec.bitstream import (
    HEADER_SIZE,
    MTU,
    BitstreamError,
    Codec,
    Fragment,
    FrameReady,
    Keypoints,
    Packet,
    Packetizer,
    PacketType,
    Reference,
    ReferenceReady,
    Region,
    Request,
    RequestKind,
    Residual,
    ResidualMode,
    ResidualReady,
    Tracker,
    fragments,
    pack,
    parse,
    seq_diff,
)

STREAM = 0x1234


def reference(ref_id: int = 0, size: int = 3000, seed: int = 0) -> Reference:
    image = random.Random(seed).randbytes(size)
    return Reference(ref_id, Codec.JPEG, 640, 480, 0xC0DEC001, image, b"shape-symbols")


def residual() -> Residual:
    return Residual(77, 3, Region.MOUTH, Codec.WEBP, ResidualMode.ADD, (10, 20, 64, 32), b"x" * 900)


def every_packet_kind() -> list[Packet]:
    chunk = b"abcdefghij"
    frag = Fragment(3, 0, 1, len(chunk), zlib.crc32(chunk), chunk)
    return [
        Packet(PacketType.KEYPOINTS_INTRA, STREAM, 0, 0, Keypoints(3, b"\x81\x02\x03")),
        Packet(PacketType.KEYPOINTS_PREDICTED, STREAM, 65535, 2**16 - 1, Keypoints(255, b"")),
        Packet(PacketType.REFERENCE, STREAM, 17, 60_000, frag),
        Packet(PacketType.REFRESH_RESIDUAL, 0, 18, 3000, frag),
        Packet(PacketType.REQUEST, 65535, 1, 5, Request(RequestKind.REFERENCE, 9, 4242)),
        Packet(PacketType.STREAM_INTRA, STREAM, 4, 40, Keypoints(7, b"")),
        Packet(PacketType.STREAM_PREDICTED, STREAM, 5, 80, Keypoints(7, b"\x32\x10obus")),
    ]


@pytest.mark.parametrize("packet", every_packet_kind(), ids=lambda p: p.type.name)
def test_round_trip_per_packet_type(packet: Packet) -> None:
    data = pack(packet)
    assert parse(data) == packet
    assert data[0] == 0x30 | packet.type  # version 3
    assert struct.unpack(">HHH", data[1:7]) == (packet.stream, packet.seq, packet.timestamp)


def test_keypoint_packets_cost_11_bytes_of_header() -> None:
    """Version 2's point: a keypoint packet is its payload plus 11 bytes (18 in version 1)."""
    coded = b"\x81\x02\x03" * 5
    data = pack(Packet(PacketType.KEYPOINTS_PREDICTED, STREAM, 9, 40, Keypoints(1, coded)))
    assert len(data) == HEADER_SIZE + 1 + len(coded) and HEADER_SIZE == 11


@pytest.mark.parametrize("packet", every_packet_kind(), ids=lambda p: p.type.name)
def test_every_single_byte_corruption_and_truncation_is_rejected(packet: Packet) -> None:
    data = pack(packet)
    for position in range(len(data)):
        for value in range(256):
            if value == data[position]:
                continue
            corrupt = data[:position] + bytes([value]) + data[position + 1 :]
            with pytest.raises(BitstreamError):
                parse(corrupt)
    for size in range(len(data)):
        with pytest.raises(BitstreamError):
            parse(data[:size])
    with pytest.raises(BitstreamError):
        parse(data + b"\x00")


def forge(kind: int, payload: bytes, version: int = 3) -> bytes:
    """A datagram with a valid CRC around arbitrary fields."""
    head = struct.pack(">BHHH", (version << 4 | kind) & 0xFF, STREAM, 1, 2)
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def version_1(kind: int, payload: bytes) -> bytes:
    """A datagram as version 1 laid it out (magic 0x4B, 18-byte header)."""
    head = struct.pack(">BBBBHHIH", 0x4B, 1, kind, 0, STREAM, 1, 2, len(payload))
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def test_semantically_bad_packets_with_valid_crc_are_rejected_clearly() -> None:
    cases = {
        "version": forge(2, b"\x00", version=2),
        "version 1": version_1(2, b"\x00\x01"),
        "type": forge(12, b"\x00"),
        "reference id": forge(2, b""),
        "fragment header": forge(1, b"\x00" * 5),
        "fragment 2 of 1": forge(1, struct.pack(">BBBBII", 0, 2, 1, 0, 4, 0) + b"abcd"),
        "last one empty": forge(1, struct.pack(">BBBBII", 0, 0, 6, 0, 10, 0) + b"ab"),
        "expected": forge(1, struct.pack(">BBBBII", 0, 0, 2, 0, 10, 0) + b"abc"),
        "request payload": forge(5, b"\x01\x02\x03"),
        "request kind": forge(5, b"\x07\x00\x00\x00"),
    }
    for what, data in cases.items():
        with pytest.raises(BitstreamError) as error:
            parse(data)
        assert what.split()[-1] in str(error.value) or what in str(error.value), what


def test_garbage_never_raises_anything_but_bitstream_error() -> None:
    rng = random.Random(1)
    valid = [pack(p) for p in every_packet_kind()]
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.4:
            data = rng.randbytes(rng.randrange(0, 80))
        elif choice < 0.7:  # valid CRC around random payloads of every type
            data = forge(rng.randrange(0, 8), rng.randbytes(rng.randrange(0, 40)))
        else:  # a valid packet with a few random bytes changed
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        with contextlib.suppress(BitstreamError):
            parse(data)


def test_pack_rejects_out_of_range_fields() -> None:
    good = every_packet_kind()[0]
    for bad in (
        Packet(good.type, 70000, 0, 0, good.payload),
        Packet(good.type, 0, 65536, 0, good.payload),
        Packet(good.type, 0, 0, -1, good.payload),
        Packet(good.type, 0, 0, 0, Keypoints(256, b"")),
        Packet(PacketType.REQUEST, 0, 0, 0, good.payload),
    ):
        with pytest.raises(BitstreamError):
            pack(bad)


def test_sequence_numbers_wrap() -> None:
    assert seq_diff(0, 65535) == 1 and seq_diff(65535, 0) == -1
    assert seq_diff(5, 5) == 0 and seq_diff(32767, 0) == 32767 and seq_diff(32768, 0) == -32768
    sender = Packetizer(STREAM)
    sender._seq["frames"] = 65534
    seqs = [parse(sender.keypoints(b"\x01", i == 0, 0, i)).seq for i in range(4)]
    assert seqs == [65534, 65535, 0, 1]


def test_objects_fragment_within_mtu_and_round_trip() -> None:
    ref = reference(size=5000)
    assert Reference.from_body(ref.ref_id, ref.to_body()) == ref
    assert Residual.from_body(residual().to_body()) == residual()
    datagrams = Packetizer(STREAM).reference(ref, 0)
    assert len(datagrams) == 5 and all(len(d) <= MTU for d in datagrams)
    parts = [parse(d).payload for d in datagrams]
    assert all(isinstance(p, Fragment) for p in parts)
    with pytest.raises(BitstreamError):
        Reference.from_body(0, ref.to_body()[:20])
    with pytest.raises(BitstreamError):
        fragments(0, b"x" * (256 * MTU))


# ---- the receiver ---------------------------------------------------------------------------


def stream(frames: int, period: int = 10, start: int = 0) -> tuple[list[bytes], list[bytes]]:
    """A sender's reference datagrams and one keypoint datagram per frame."""
    sender = Packetizer(STREAM)
    sender._seq["frames"] = start
    refs = sender.reference(reference(), 0)
    frames_out = [
        sender.keypoints(bytes([i % 256, 7]), i % period == 0, 0, 33 * i % 65536)
        for i in range(frames)
    ]
    return refs, frames_out


def released(events: list) -> list[int]:
    return [e.seq for e in events if isinstance(e, FrameReady)]


def feed(tracker: Tracker, datagrams: list[bytes]) -> list:
    events: list = []
    for data in datagrams:
        events += tracker.feed(data)
    return events


def test_in_order_stream_is_released_whole() -> None:
    refs, frames = stream(30)
    tracker = Tracker()
    events = feed(tracker, refs + frames)
    assert isinstance(events[0], ReferenceReady) and events[0].reference == reference()
    assert released(events) == list(range(30))
    assert not tracker.wants_intra and tracker.stats.skipped == 0


def test_reordering_within_the_delay_loses_nothing() -> None:
    refs, frames = stream(30)
    order = frames[:]
    for i in range(1, 28, 3):
        order[i], order[i + 2] = order[i + 2], order[i]
    events = feed(Tracker(max_delay=3), refs + order)
    assert released(events) == list(range(30))


def test_a_lost_packet_breaks_the_chain_until_the_next_intra() -> None:
    refs, frames = stream(30)
    tracker = Tracker(max_delay=3)
    events = feed(tracker, refs + frames[:12])
    del frames[12]
    events += feed(tracker, frames[12:15])  # 13, 14, 15 arrive: 12 is given up
    assert tracker.wants_intra
    events += feed(tracker, frames[15:])
    assert released(events) == list(range(12)) + list(range(20, 30))
    assert not tracker.wants_intra
    assert tracker.stats.dropped == 7 and tracker.stats.skipped == 8


def test_a_decoder_failure_waits_for_the_next_intra() -> None:
    refs, frames = stream(30)
    tracker = Tracker()
    events = feed(tracker, refs + frames[:5])
    tracker.break_chain()
    assert tracker.wants_intra
    events += feed(tracker, frames[5:])
    assert released(events) == list(range(5)) + list(range(10, 30))


def test_an_intra_behind_a_gap_waits_for_the_delay_too() -> None:
    refs, frames = stream(30)
    tracker = Tracker(max_delay=3)
    events = feed(tracker, refs + frames[:18] + frames[19:21])
    assert released(events) == list(range(18))  # 19 (and 18) could still come
    events = feed(tracker, frames[21:22])
    assert released(events) == [20, 21]
    assert tracker.stats.dropped == 1 and tracker.stats.skipped == 2  # 19 dropped, 18 lost


def test_duplicates_and_late_packets_are_dropped() -> None:
    refs, frames = stream(20)
    tracker = Tracker()
    doubled = [d for frame in frames for d in (frame, frame)]
    events = feed(tracker, refs + refs + doubled + [frames[3]])
    assert released(events) == list(range(20))
    assert sum(isinstance(e, ReferenceReady) for e in events) == 1
    assert tracker.stats.duplicates + tracker.stats.late == len(refs) + 21


def test_chain_across_sequence_wrap() -> None:
    refs, frames = stream(40, start=65520)
    order = frames[:]
    order[15], order[16] = order[16], order[15]  # 65535 and 0 swap
    events = feed(Tracker(), refs + order)
    assert released(events) == [(65520 + i) % 65536 for i in range(40)]


def test_keypoints_wait_for_their_reference() -> None:
    refs, frames = stream(10)
    tracker = Tracker()
    random.Random(2).shuffle(refs)
    assert feed(tracker, frames[:4] + refs[:-1]) == []
    assert tracker.wanted_references == [0] and not tracker.wants_intra
    events = feed(tracker, refs[-1:] + frames[4:])
    assert isinstance(events[0], ReferenceReady)
    assert released(events) == list(range(10))


def test_a_reference_that_never_completes_is_never_used() -> None:
    refs, frames = stream(50)
    tracker = Tracker(reference_hold=8)
    events = feed(tracker, refs[1:] + frames)
    assert not any(isinstance(e, (ReferenceReady, FrameReady)) for e in events)
    assert tracker.wanted_references == [0]
    assert len(tracker._pending) <= 9
    events = feed(tracker, refs[:1] + Packetizer(STREAM).reference(reference(), 0))
    assert [type(e) for e in events] == [ReferenceReady]


def test_fragments_reassemble_in_any_order_and_bad_objects_are_refused() -> None:
    ref = reference(ref_id=5, size=4000, seed=3)
    datagrams = Packetizer(STREAM).reference(ref, 9)
    for seed in range(5):
        order = datagrams[:]
        random.Random(seed).shuffle(order)
        tracker = Tracker()
        events = feed(tracker, order[:-1])
        assert events == [] and 5 not in tracker.bank
        assert feed(tracker, order[-1:]) == [ReferenceReady(ref, 9)]
        assert tracker.bank[5] == ref
    # fragments that agree on length and CRC but not on content: refused, not yielded
    bad = [parse(d) for d in datagrams]
    first = bad[0].payload
    assert isinstance(first, Fragment)
    forged = Fragment(5, 0, first.count, first.length, first.crc, b"\xff" * len(first.chunk))
    tracker = Tracker()
    events = feed(tracker, [pack(Packet(PacketType.REFERENCE, STREAM, 0, 0, forged))])
    events += feed(tracker, datagrams[1:])
    assert events == [] and tracker.stats.bad_objects == 1


def test_residuals_are_yielded_once() -> None:
    sender = Packetizer(STREAM)
    patch = Residual(4, 0, Region.EYES, Codec.JPEG, ResidualMode.REPLACE, (0, 0, 8, 8), b"y" * 2500)
    datagrams = sender.residual(patch, 3)
    tracker = Tracker()
    events = feed(tracker, datagrams[::-1] + datagrams)
    assert events == [ResidualReady(patch, 3)]


def test_other_streams_requests_and_a_sequence_jump() -> None:
    refs, frames = stream(10)
    tracker = Tracker()
    feed(tracker, refs + frames)
    other = Packetizer(STREAM + 1).keypoints(b"\x01", True, 0, 0)
    request = Packetizer(STREAM).request(RequestKind.INTRA, 0, 9, 0)
    assert feed(tracker, [other, request]) == [] and tracker.stats.foreign == 2
    _, restarted = stream(12, start=40000)  # e.g. the sender restarted with the same id
    events = feed(tracker, restarted[1:] + restarted[10:11])
    assert released(events) == [40010, 40011]


def test_loss_duplication_reordering_and_garbage_never_break_a_chain() -> None:
    """A long lossy stream: what comes out is always a valid chain, and every intra that
    arrives restarts decoding (recovery within one intra period)."""
    rng = random.Random(7)
    period = 15
    refs, frames = stream(900, period=period)
    sent = {parse(d).seq: d for d in frames}
    network: list[bytes] = list(refs)
    delivered_intra, delivered = set(), set()
    for i, data in enumerate(frames):
        roll = rng.random()
        if roll < 0.08:
            continue  # lost
        if roll < 0.12:
            network.append(data[: rng.randrange(len(data))])  # truncated: garbage
            continue
        network.append(data)
        delivered.add(i)
        if i % period == 0:
            delivered_intra.add(i)
        if roll < 0.17:
            network.append(data)  # duplicated
        if roll < 0.2:
            network.append(rng.randbytes(rng.randrange(60)))
    for i in range(len(refs), len(network) - 2, 2):  # local reordering
        if rng.random() < 0.3:
            network[i], network[i + 1] = network[i + 1], network[i]
    tracker = Tracker(max_delay=3)
    events = feed(tracker, network)
    out = [e for e in events if isinstance(e, FrameReady)]
    seqs = [e.seq for e in out]
    assert len(seqs) == len(set(seqs))
    assert all(seq_diff(b, a) > 0 for a, b in itertools.pairwise(seqs))
    for before, event in zip([None, *out], out, strict=False):
        assert pack(parse(sent[event.seq])) == sent[event.seq]
        assert event.coded == bytes([event.seq % 256, 7])
        assert event.intra == (event.seq % period == 0)
        if not event.intra:
            assert before is not None and before.seq == event.seq - 1
    assert delivered_intra <= set(seqs)
    assert tracker.stats.garbage > 0 and tracker.stats.dropped > 0
    # and nothing usable is lost: every frame whose chain arrived whole comes out
    usable, chain = set(), False
    for i in range(len(frames)):
        chain = i in delivered and (i % period == 0 or chain)
        if chain:
            usable.add(i)
    assert set(seqs) == usable and len(usable) > 0.3 * len(frames)


def test_the_specs_whole_packet_test_vector() -> None:
    """docs/codec-bitstream.md §8.5: a change here changes the bitstream (a new version)."""
    coded = bytes.fromhex("f3170c3d65e0d2bd")
    packet = Packet(PacketType.KEYPOINTS_INTRA, 0x1234, 7, 1000, Keypoints(2, coded))
    assert pack(packet).hex() == "321234000703e87d0e96b102f3170c3d65e0d2bd"
    assert parse(bytes.fromhex("321234000703e87d0e96b102f3170c3d65e0d2bd")) == packet
