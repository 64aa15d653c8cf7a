"""Keypoint codec bitstream: packets, their parsing, and the receiver's loss/reorder logic.

One UDP datagram is one packet: an 11-byte header (version and type in one byte, stream
id, 16-bit sequence number, 16-bit millisecond timestamp, CRC-32) and a payload. The
layout, every field and what a receiver does on loss is specified in
docs/codec-bitstream.md; this module is its reference implementation.

Why it looks like this:

- The header is small because a keypoint packet is small (about 20 bytes of payload,
  30 times a second): no magic (the CRC does that job), no length (the datagram's),
  a 16-bit timestamp (a receiver unwraps it against the previous packet).
- The CRC covers header and payload, so a truncated, bit-flipped or foreign datagram is
  rejected whole (``BitstreamError``) before any field is trusted; ``parse`` never raises
  anything else.
- Keypoint packets have their own sequence space, so "predicted from N - 1" is exact: a
  predicted packet is usable only when every packet back to its intra was. Reference
  and residual fragments use a second space, receiver feedback a third.
- Pictures (references, region residuals) are objects split into fragments that each
  carry the object's length and CRC: any fragment locates itself, arrival order is
  irrelevant, a resent object merges with what arrived, and a reused id with new content
  is told apart from a duplicate.
- ``Tracker`` is the receiver's logic with no sockets or clocks (counts of packets stand
  in for time), so transport, decoder and tests share one deterministic implementation.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

VERSION = 3
VERSION_1_MAGIC = 0x4B  # the first byte of every version-1 datagram ("K")
HEADER = struct.Struct(">BHHHI")  # version<<4 | type, stream, seq, timestamp (ms), crc
HEADER_SIZE = HEADER.size  # 11
_CRC_AT = HEADER_SIZE - 4
FRAGMENT = struct.Struct(">BBBBII")  # object id, index, count, reserved, length, crc
FRAGMENT_SIZE = FRAGMENT.size  # 12
MTU = 1200  # datagram size the packetizer stays within
MAX_PAYLOAD = 0xFFFF
SEQ_MOD = 1 << 16
# What a receiver holds for senders it cannot authenticate. A sender keeps datagrams
# within the MTU, so an object is at most 255 fragments of 1177 bytes (300 KB) and a
# keypoint packet at most 1200 bytes; the bounds leave room for a larger MTU, not for
# 255 fragments of 64 KB (16 MB each, 16 of them in reassembly: 267 MB).
MAX_OBJECT = 2 << 20
MAX_ASSEMBLY_BYTES = 4 << 20  # all partial objects together
MAX_KEYPOINT_PAYLOAD = MTU - HEADER_SIZE


class BitstreamError(ValueError):
    """A datagram or object that is not a valid packet: truncated, corrupt, unknown."""


class PacketType(IntEnum):
    REFERENCE = 1  # a fragment of a reference picture object
    KEYPOINTS_INTRA = 2  # absolute keypoint vector, starts a prediction chain
    KEYPOINTS_PREDICTED = 3  # difference to keypoint packet seq - 1
    REFRESH_RESIDUAL = 4  # a fragment of a region patch/residual object
    REQUEST = 5  # receiver -> sender: send an intra, or resend a reference
    STREAM_INTRA = 6  # a low-resolution stream's key frame (its reference object) shown
    STREAM_PREDICTED = 7  # a low-resolution stream frame, predicted from seq - 1
    REPORT = 8  # receiver -> sender: what arrived, for the sender's rate
    STREAM_PART = 9  # the start of a stream frame too large for one datagram


KEYPOINT_TYPES = (PacketType.KEYPOINTS_INTRA, PacketType.KEYPOINTS_PREDICTED)
STREAM_TYPES = (PacketType.STREAM_INTRA, PacketType.STREAM_PREDICTED, PacketType.STREAM_PART)
# one packet per frame, in one sequence space: a chain of either kind starts at an intra
FRAME_TYPES = KEYPOINT_TYPES + STREAM_TYPES
INTRA_TYPES = (PacketType.KEYPOINTS_INTRA, PacketType.STREAM_INTRA)
FEEDBACK_TYPES = (PacketType.REQUEST, PacketType.REPORT)  # receiver -> sender
OBJECT_TYPES = (PacketType.REFERENCE, PacketType.REFRESH_RESIDUAL)


class Codec(IntEnum):
    JPEG = 1
    WEBP = 2
    PNG = 3
    H264 = 4  # one IDR access unit, Annex B
    AV1 = 5  # one key frame, low-overhead OBUs
    AV1_STREAM = 6  # a low-resolution stream's key frame (STREAM_* packets follow it)


class Region(IntEnum):
    FACE = 1
    MOUTH = 2
    EYES = 3
    LEFT_EYE = 4
    RIGHT_EYE = 5


class ResidualMode(IntEnum):
    REPLACE = 0  # the image replaces the rendered pixels in the box
    ADD = 1  # the image minus 128 is added to the rendered pixels


class RequestKind(IntEnum):
    INTRA = 1
    REFERENCE = 2
    REFRESH = 3  # the receiver missed an object: its picture may differ from the sender's


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in sequence-number space: in [-32768, 32767] (RFC 1982 style)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


@dataclass(frozen=True)
class Keypoints:
    """The payload of a frame packet: a keypoint vector, or a low-resolution stream
    frame (then ``ref_id`` names the stream's key frame object)."""

    ref_id: int  # the reference the frame applies to
    coded: bytes  # the entropy-coded vector (appliance.codec.entropy), or the frame's OBUs


@dataclass(frozen=True)
class Fragment:
    object_id: int
    index: int
    count: int
    length: int  # the whole object's length
    crc: int  # CRC-32 of the whole object
    chunk: bytes

    @property
    def span(self) -> tuple[int, int]:
        return _span(self.index, self.count, self.length)


@dataclass(frozen=True)
class Request:
    kind: RequestKind
    ref_id: int
    last_seq: int  # last keypoint seq the receiver decoded (informational)


@dataclass(frozen=True)
class Report:
    """What one receiver saw of a stream over ``interval_ms``: the sender's bandwidth
    estimate follows it (appliance.codec.congestion)."""

    interval_ms: int
    bytes: int  # whole datagrams of the stream that arrived
    received: int  # datagrams
    lost: int  # datagrams missing from the sequence spaces
    delay_ms: int  # how much the one-way delay grew over the interval (queues filling)


_REPORT = struct.Struct(">HIHHh")

Payload = Keypoints | Fragment | Request | Report


@dataclass(frozen=True)
class Packet:
    type: PacketType
    stream: int
    seq: int
    timestamp: int  # capture time, ms, wraps at 2**16
    payload: Payload


def _span(index: int, count: int, length: int) -> tuple[int, int]:
    chunk = -(-length // count)
    return index * chunk, min(length, (index + 1) * chunk)


def _u(value: int, bits: int, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise BitstreamError(f"{name} must be an integer in [0, {(1 << bits) - 1}], got {value}")
    return value


def _payload_bytes(packet: Packet) -> bytes:
    p = packet.payload
    if packet.type in FRAME_TYPES and isinstance(p, Keypoints):
        return bytes([_u(p.ref_id, 8, "ref_id")]) + bytes(p.coded)
    if packet.type in OBJECT_TYPES and isinstance(p, Fragment):
        _check_fragment(p)
        head = FRAGMENT.pack(p.object_id, p.index, p.count, 0, p.length, p.crc)
        return head + bytes(p.chunk)
    if packet.type == PacketType.REPORT and isinstance(p, Report):
        if not -(1 << 15) <= p.delay_ms < 1 << 15:
            raise BitstreamError(f"delay_ms must fit 16 bits, got {p.delay_ms}")
        return _REPORT.pack(
            _u(p.interval_ms, 16, "interval_ms"), _u(p.bytes, 32, "bytes"),
            _u(p.received, 16, "received"), _u(p.lost, 16, "lost"), p.delay_ms,
        )  # fmt: skip
    if packet.type == PacketType.REQUEST and isinstance(p, Request):
        kind = _u(int(p.kind), 8, "kind")
        return struct.pack(">BBH", kind, _u(p.ref_id, 8, "ref_id"), _u(p.last_seq, 16, "seq"))
    raise BitstreamError(f"{type(p).__name__} is not the payload of a {packet.type.name} packet")


def pack(packet: Packet) -> bytes:
    """The datagram of ``packet``; BitstreamError for out-of-range fields."""
    payload = _payload_bytes(packet)
    if len(payload) > MAX_PAYLOAD:
        raise BitstreamError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(
        VERSION << 4 | PacketType(packet.type),
        _u(packet.stream, 16, "stream"),
        _u(packet.seq, 16, "seq"),
        _u(packet.timestamp, 16, "timestamp"),
        0,
    )[:_CRC_AT]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def parse(data: bytes) -> Packet:
    """The packet in datagram ``data``; BitstreamError (only) if it is not a valid one."""
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise BitstreamError(f"truncated: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    first, stream, seq, ts, crc = HEADER.unpack_from(data)
    if first == VERSION_1_MAGIC:
        raise BitstreamError(f"unsupported version 1 (this receiver reads {VERSION})")
    if first >> 4 != VERSION:
        raise BitstreamError(f"unsupported version {first >> 4} (this receiver reads {VERSION})")
    if zlib.crc32(data[HEADER_SIZE:], zlib.crc32(data[:_CRC_AT])) != crc:
        raise BitstreamError("CRC mismatch")
    try:
        ptype = PacketType(first & 0x0F)
    except ValueError:
        raise BitstreamError(f"unknown packet type {first & 0x0F}") from None
    return Packet(ptype, stream, seq, ts, _parse_payload(ptype, data[HEADER_SIZE:]))


def _parse_payload(ptype: PacketType, body: bytes) -> Payload:
    if ptype in FRAME_TYPES:
        if not body:
            raise BitstreamError("frame payload without reference id")
        return Keypoints(body[0], body[1:])
    if ptype in OBJECT_TYPES:
        if len(body) < FRAGMENT_SIZE:
            raise BitstreamError("truncated fragment header")
        object_id, index, count, _reserved, length, crc = FRAGMENT.unpack_from(body)
        fragment = Fragment(object_id, index, count, length, crc, body[FRAGMENT_SIZE:])
        _check_fragment(fragment)
        return fragment
    if ptype == PacketType.REPORT:
        if len(body) != _REPORT.size:
            raise BitstreamError(f"report payload must be {_REPORT.size} bytes, got {len(body)}")
        return Report(*_REPORT.unpack(body))
    if len(body) != 4:
        raise BitstreamError(f"request payload must be 4 bytes, got {len(body)}")
    kind, ref_id, last_seq = struct.unpack(">BBH", body)
    try:
        return Request(RequestKind(kind), ref_id, last_seq)
    except ValueError:
        raise BitstreamError(f"unknown request kind {kind}") from None


def _check_fragment(f: Fragment) -> None:
    _u(f.object_id, 8, "object_id")
    _u(f.crc, 32, "crc")
    if not 1 <= f.count <= 255 or not 0 <= f.index < f.count:
        raise BitstreamError(f"fragment {f.index} of {f.count} is not valid")
    if not 1 <= f.length <= 255 * MAX_PAYLOAD or f.length < f.count:
        raise BitstreamError(f"object length {f.length} does not fit {f.count} fragments")
    last_start, _ = _span(f.count - 1, f.count, f.length)
    if last_start >= f.length:
        raise BitstreamError(f"{f.count} fragments leave the last one empty")
    start, end = f.span
    if len(f.chunk) != end - start:
        raise BitstreamError(f"fragment {f.index} has {len(f.chunk)} bytes, expected {end - start}")


# ---- objects carried in fragments --------------------------------------------------------

_REFERENCE = struct.Struct(">BBHHII")  # codec, reserved, width, height, model, image length
_RESIDUAL = struct.Struct(">HBBBBHHHH")  # frame seq, ref, region, codec, mode, x, y, w, h


@dataclass(frozen=True)
class Reference:
    """A reference picture and the keypoint layer's data for it (its reference shape)."""

    ref_id: int
    codec: Codec
    width: int  # frame size the keypoint vectors refer to
    height: int
    model: int  # id of the keypoint model (basis, steps, entropy priors)
    image: bytes
    keypoints: bytes = b""

    def to_body(self) -> bytes:
        head = _REFERENCE.pack(
            _u(int(self.codec), 8, "codec"),
            0,
            _u(self.width, 16, "width"),
            _u(self.height, 16, "height"),
            _u(self.model, 32, "model"),
            len(self.image),
        )
        return head + bytes(self.image) + bytes(self.keypoints)

    @classmethod
    def from_body(cls, ref_id: int, body: bytes) -> Reference:
        if len(body) < _REFERENCE.size:
            raise BitstreamError("truncated reference header")
        codec, _reserved, width, height, model, size = _REFERENCE.unpack_from(body)
        end = _REFERENCE.size + size
        if end > len(body):
            raise BitstreamError(f"reference image of {size} bytes overruns the object")
        try:
            kind = Codec(codec)
        except ValueError:
            raise BitstreamError(f"unknown image codec {codec}") from None
        return cls(ref_id, kind, width, height, model, body[_REFERENCE.size : end], body[end:])


@dataclass(frozen=True)
class Residual:
    """A picture patch for one region of one frame, sent when the rendering failed there."""

    frame_seq: int  # keypoint seq of the frame it was computed on
    ref_id: int
    region: Region
    codec: Codec
    mode: ResidualMode
    box: tuple[int, int, int, int]  # x, y, w, h in frame px
    image: bytes

    def to_body(self) -> bytes:
        x, y, w, h = (_u(v, 16, "box") for v in self.box)
        head = _RESIDUAL.pack(
            _u(self.frame_seq, 16, "frame_seq"),
            _u(self.ref_id, 8, "ref_id"),
            _u(int(self.region), 8, "region"),
            _u(int(self.codec), 8, "codec"),
            _u(int(self.mode), 8, "mode"),
            x,
            y,
            w,
            h,
        )
        return head + bytes(self.image)

    @classmethod
    def from_body(cls, body: bytes) -> Residual:
        if len(body) < _RESIDUAL.size:
            raise BitstreamError("truncated residual header")
        seq, ref_id, region, codec, mode, x, y, w, h = _RESIDUAL.unpack_from(body)
        try:
            kinds = Region(region), Codec(codec), ResidualMode(mode)
        except ValueError:
            raise BitstreamError("unknown region, codec or mode in residual") from None
        return cls(seq, ref_id, *kinds, (x, y, w, h), body[_RESIDUAL.size :])


def fragments(object_id: int, body: bytes, mtu: int = MTU) -> list[Fragment]:
    """``body`` split into the fewest fragments whose datagrams fit ``mtu`` bytes."""
    room = mtu - HEADER_SIZE - FRAGMENT_SIZE
    if room < 1 or not body:
        raise BitstreamError("nothing to send, or an MTU too small for a fragment")
    count = -(-len(body) // room)
    if count > 255:
        raise BitstreamError(f"object of {len(body)} bytes needs {count} > 255 fragments")
    crc = zlib.crc32(body)
    out = []
    for index in range(count):
        start, end = _span(index, count, len(body))
        out.append(Fragment(object_id, index, count, len(body), crc, body[start:end]))
    return out


class Packetizer:
    """Sender side: numbers packets in their sequence spaces and fragments objects."""

    def __init__(self, stream: int, mtu: int = MTU) -> None:
        self.stream, self.mtu = _u(stream, 16, "stream"), mtu
        self._seq = {"frames": 0, "objects": 0, "requests": 0}
        self._residual_id = 0

    def peek(self, space: str) -> int:
        """The sequence number the next packet of ``space`` will get."""
        return self._seq[space]

    def _next(self, space: str) -> int:
        seq = self._seq[space]
        self._seq[space] = (seq + 1) % SEQ_MOD
        return seq

    def keypoints(self, coded: bytes, intra: bool, ref_id: int, timestamp: int) -> bytes:
        kind = PacketType.KEYPOINTS_INTRA if intra else PacketType.KEYPOINTS_PREDICTED
        return self._frame(kind, coded, ref_id, timestamp)

    def stream_frame(self, data: bytes, intra: bool, key_id: int, timestamp: int) -> bytes:
        """A low-resolution stream frame; intra: the key frame in object ``key_id``
        (then ``data`` is empty)."""
        kind = PacketType.STREAM_INTRA if intra else PacketType.STREAM_PREDICTED
        return self._frame(kind, data, key_id, timestamp)

    def stream_frames(self, data: bytes, key_id: int, timestamp: int) -> list[bytes]:
        """A predicted stream frame in as many frame packets as the MTU needs: parts,
        then the packet that completes it."""
        room = min(self.mtu, MTU) - HEADER_SIZE - 1
        chunks = [data[i : i + room] for i in range(0, len(data), room)] or [b""]
        parts = [self._frame(PacketType.STREAM_PART, c, key_id, timestamp) for c in chunks[:-1]]
        return [*parts, self._frame(PacketType.STREAM_PREDICTED, chunks[-1], key_id, timestamp)]

    def _frame(self, kind: PacketType, data: bytes, ref_id: int, timestamp: int) -> bytes:
        seq = self._next("frames")
        return pack(Packet(kind, self.stream, seq, timestamp, Keypoints(ref_id, data)))

    def reference(self, reference: Reference, timestamp: int) -> list[bytes]:
        body = reference.to_body()
        return self._object(PacketType.REFERENCE, reference.ref_id, body, timestamp)

    def residual(self, residual: Residual, timestamp: int) -> list[bytes]:
        object_id, self._residual_id = self._residual_id, (self._residual_id + 1) % 256
        body = residual.to_body()
        return self._object(PacketType.REFRESH_RESIDUAL, object_id, body, timestamp)

    def request(self, kind: RequestKind, ref_id: int, last_seq: int, timestamp: int) -> bytes:
        payload = Request(kind, ref_id, last_seq)
        seq = self._next("requests")
        return pack(Packet(PacketType.REQUEST, self.stream, seq, timestamp, payload))

    def report(self, report: Report, timestamp: int) -> bytes:
        seq = self._next("requests")
        return pack(Packet(PacketType.REPORT, self.stream, seq, timestamp, report))

    def _object(self, kind: PacketType, object_id: int, body: bytes, ts: int) -> list[bytes]:
        parts = fragments(object_id, body, self.mtu)
        return [pack(Packet(kind, self.stream, self._next("objects"), ts, f)) for f in parts]


# ---- receiver ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameReady:
    """A frame packet whose chain is complete and whose reference is held: decode it."""

    seq: int
    timestamp: int
    intra: bool
    ref_id: int
    coded: bytes
    stream: bool = False  # a low-resolution stream frame, not a keypoint vector
    part: bool = False  # the start of a stream frame that the next packet(s) complete


@dataclass(frozen=True)
class ReferenceReady:
    reference: Reference
    timestamp: int


@dataclass(frozen=True)
class ResidualReady:
    residual: Residual
    timestamp: int


Event = FrameReady | ReferenceReady | ResidualReady


@dataclass
class Stats:
    packets: int = 0
    garbage: int = 0  # datagrams parse() rejected
    foreign: int = 0  # other stream ids, requests
    duplicates: int = 0
    late: int = 0  # keypoint packets (or their duplicates) older than the released ones
    skipped: int = 0  # keypoint sequence numbers never released: lost, or dropped below
    dropped: int = 0  # keypoint packets that arrived but could not be used
    bad_objects: int = 0  # reassembled objects with a bad CRC or body, or refused
    oversized: int = 0  # objects and keypoint packets over the receiver's bounds


@dataclass
class _Assembly:
    key: tuple[int, int, int]  # length, crc, count: the object's identity
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0  # bytes held in chunks


class Tracker:
    """Receiver logic for one stream: feed datagrams in any order, get decodable events.

    Keypoint packets come out in sequence order, each only when its chain back to an
    intra packet is complete and its reference picture is held. A missing packet is
    waited for until ``max_delay`` later keypoint packets have arrived; then the chain is
    broken, the predicted packets behind the gap are dropped, ``wants_intra`` is set (if
    no intra is already waiting), and decoding resumes at the next intra. A
    packet naming a reference not (yet) complete is held while fewer than
    ``reference_hold`` packets wait behind it; ``wanted_references`` lists such ids.

    ``accept_reference``, if given, sees each complete reference before it enters the
    bank and may refuse it (False): a refused one changes nothing, so the reference held
    under the same id (if any) stays. Memory is bounded whatever arrives: ``window``
    keypoint packets of at most ``MAX_KEYPOINT_PAYLOAD`` bytes, ``2 * bank`` partial
    objects of at most ``MAX_OBJECT`` bytes and ``MAX_ASSEMBLY_BYTES`` together.
    """

    def __init__(
        self,
        stream: int | None = None,
        max_delay: int = 3,
        reference_hold: int = 30,
        bank: int = 8,
        window: int = 256,
        accept_reference: Callable[[Reference], bool] | None = None,
    ) -> None:
        self.stream = stream
        self.accept_reference = accept_reference
        if min(max_delay, reference_hold, bank, window) < 1:
            raise ValueError("max_delay, reference_hold, bank and window must be >= 1")
        self.max_delay, self.reference_hold, self.window = max_delay, reference_hold, window
        self.bank_size = bank
        self.stats = Stats()
        self.bank: OrderedDict[int, Reference] = OrderedDict()  # complete, oldest first
        self._bank_ids: dict[int, tuple[int, int]] = {}  # ref id -> object length, crc
        self._assemblies: OrderedDict[tuple[int, int], _Assembly] = OrderedDict()
        self._assembly_bytes = 0
        self._residuals_done: deque[tuple[int, int, int, int]] = deque(maxlen=32)
        self._pending: dict[int, Packet] = {}
        self._next: int | None = None  # seq the chain needs next; None: wait for intra
        self._floor: int | None = None  # last seq released or dropped
        self._released: int | None = None  # last seq released
        self._origin: int | None = None  # first seq seen: orders packets before any floor
        self._chain_ref: int | None = None
        self._seen_keypoints = False

    @property
    def wants_intra(self) -> bool:
        """No usable chain while keypoint packets arrive: ask the sender for an intra."""
        return self._seen_keypoints and self._next is None and not self._held_intra()

    @property
    def wanted_references(self) -> list[int]:
        """Reference ids that waiting keypoint packets name but that are not complete."""
        refs = {self._ref_of(p) for p in self._pending.values()} - set(self.bank)
        return sorted(r for r in refs if r is not None)

    def break_chain(self) -> None:
        """The decoder could not use the last released packet (its vector did not decode):
        release nothing more until the next intra packet."""
        self._break()

    def forget_reference(self, ref_id: int) -> None:
        """The application lost reference ``ref_id`` (it could not keep it): packets naming
        it wait for it again, and ``wanted_references`` asks for it."""
        if self.bank.pop(ref_id, None) is not None:
            del self._bank_ids[ref_id]

    @property
    def assembly_bytes(self) -> int:
        """Bytes held in partial objects (at most ``MAX_ASSEMBLY_BYTES``)."""
        return self._assembly_bytes

    def feed(self, data: bytes) -> list[Event]:
        """Events made possible by datagram ``data``; never raises on bad input."""
        try:
            packet = parse(data)
        except BitstreamError:
            self.stats.garbage += 1
            return []
        return self.push(packet)

    def push(self, packet: Packet) -> list[Event]:
        self.stats.packets += 1
        if self.stream is None:
            self.stream = packet.stream
        if packet.stream != self.stream or packet.type in FEEDBACK_TYPES:
            self.stats.foreign += 1
            return []
        if packet.type in OBJECT_TYPES:
            events = self._object(packet)
            return events + self._release() if events else []
        assert isinstance(packet.payload, Keypoints)
        if len(packet.payload.coded) >= MAX_KEYPOINT_PAYLOAD:  # no sender makes one
            self.stats.oversized += 1
            return []
        return self._keypoints(packet)

    # -- keypoints --

    def _keypoints(self, packet: Packet) -> list[Event]:
        self._seen_keypoints = True
        seq = packet.seq
        if self._origin is None:
            self._origin = seq
        if self._floor is not None:
            ahead = seq_diff(seq, self._floor)
            if -self.window <= ahead <= 0:
                self.stats.late += 1
                return []
            if abs(ahead) > self.window:  # a jump (long outage, sender restart): resync
                self.stats.dropped += len(self._pending)
                self._pending.clear()
                self._break()
                self._floor = self._released = None
                self._origin = seq
        if seq in self._pending:
            self.stats.duplicates += 1
            return []
        self._pending[seq] = packet
        return self._release()

    def _order(self) -> list[int]:
        base = self._floor if self._floor is not None else self._origin
        return sorted(self._pending, key=lambda s: seq_diff(s, base or 0))

    def _release(self) -> list[Event]:
        out: list[Event] = []
        while self._pending:
            if self._next is None:
                if not self._start_chain(out):
                    break
            elif not self._continue_chain(out):
                break
        if len(self._pending) > self.window:
            for seq in self._order()[: len(self._pending) - self.window]:
                self._drop(seq)
        return out

    def _start_chain(self, out: list[Event]) -> bool:
        intras = [s for s in self._order() if _intra(self._pending[s])]
        if not intras:
            return False
        seq = intras[0]
        packet = self._pending[seq]
        ready = [s for s in intras if self._ref_of(self._pending[s]) in self.bank]
        if ready and ready[0] != seq:
            # a newer intra can start now: what waits for a missing reference before it
            # would only hold up the picture (its reference may never come)
            seq, packet = ready[0], self._pending[ready[0]]
        if not self._reference_ready(packet, seq):
            return seq not in self._pending  # given up on it: look for the next intra
        for older in self._order():
            if seq_diff(older, seq) >= 0:
                break
            self._drop(older)
        self._chain_ref = self._ref_of(packet)
        self._emit(seq, out)
        return True

    def _continue_chain(self, out: list[Event]) -> bool:
        seq = self._next
        assert seq is not None
        packet = self._pending.get(seq)
        if packet is None:
            return self._gap()
        if _intra(packet):
            self._next = None  # a new chain starts here (maybe on another reference)
            return True
        if self._ref_of(packet) != self._chain_ref:
            self._break()
            return True
        if not self._reference_ready(packet, seq):
            return seq not in self._pending
        self._emit(seq, out)
        return True

    def _gap(self) -> bool:
        """The chain's next packet is missing: wait for it while fewer than ``max_delay``
        later ones have come (even past an intra: the gap may just be reordering)."""
        if len(self._pending) < self.max_delay:
            return False
        self._break()
        return self._held_intra()

    def _reference_ready(self, packet: Packet, seq: int) -> bool:
        """Whether the packet's reference is held; gives the packet up if held too long."""
        ref = self._ref_of(packet)
        if ref is not None and ref in self.bank:
            self.bank.move_to_end(ref)
            return True
        if len(self._pending) > self.reference_hold:
            for older in self._order():  # it and all before it can never be used
                self._drop(older)
                if older == seq:
                    break
            self._break()
        return False

    def _emit(self, seq: int, out: list[Event]) -> None:
        packet = self._pending.pop(seq)
        if self._released is not None:
            self.stats.skipped += max(0, seq_diff(seq, self._released) - 1)
        self._released, self._next = seq, (seq + 1) % SEQ_MOD
        if self._floor is None or seq_diff(seq, self._floor) > 0:
            self._floor = seq
        assert isinstance(packet.payload, Keypoints)
        intra = _intra(packet)
        p = packet.payload
        stream = packet.type in STREAM_TYPES
        part = packet.type == PacketType.STREAM_PART
        out.append(FrameReady(seq, packet.timestamp, intra, p.ref_id, p.coded, stream, part))

    def _break(self) -> None:
        """The chain cannot continue: predicted packets wait for nothing but an intra."""
        self._next, self._chain_ref = None, None

    def _drop(self, seq: int) -> None:
        self._pending.pop(seq)
        self.stats.dropped += 1
        if self._floor is None or seq_diff(seq, self._floor) > 0:
            self._floor = seq

    def _held_intra(self) -> bool:
        return any(_intra(p) for p in self._pending.values())

    @staticmethod
    def _ref_of(packet: Packet) -> int | None:
        return packet.payload.ref_id if isinstance(packet.payload, Keypoints) else None

    # -- objects --

    def _object(self, packet: Packet) -> list[Event]:
        f = packet.payload
        assert isinstance(f, Fragment)
        key, identity = (int(packet.type), f.object_id), (f.length, f.crc, f.count)
        is_reference = packet.type == PacketType.REFERENCE
        if is_reference and self._bank_ids.get(f.object_id) == (f.length, f.crc):
            self.stats.duplicates += 1
            return []
        if not is_reference and (f.object_id, *identity) in self._residuals_done:
            self.stats.duplicates += 1
            return []
        if f.length > MAX_OBJECT:
            self.stats.oversized += 1
            return []
        assembly = self._assemblies.get(key)
        if assembly is None or assembly.key != identity:
            self._forget_assembly(key)
            assembly = self._assemblies[key] = _Assembly(identity)
        if f.index in assembly.chunks:
            self.stats.duplicates += 1
            return []
        assembly.chunks[f.index] = f.chunk
        assembly.size += len(f.chunk)
        self._assembly_bytes += len(f.chunk)
        if len(assembly.chunks) < f.count:
            self._evict_assemblies()
            return []
        self._forget_assembly(key)
        body = b"".join(assembly.chunks[i] for i in range(f.count))
        return self._complete(packet, f, body)

    def _forget_assembly(self, key: tuple[int, int]) -> None:
        assembly = self._assemblies.pop(key, None)
        if assembly is not None:
            self._assembly_bytes -= assembly.size

    def _evict_assemblies(self) -> None:
        """The oldest partial objects go first: a flood of fragments of distinct objects
        costs at most the bounds, never more memory."""
        while self._assemblies and (
            len(self._assemblies) > 2 * self.bank_size or self._assembly_bytes > MAX_ASSEMBLY_BYTES
        ):
            self._forget_assembly(next(iter(self._assemblies)))

    def _complete(self, packet: Packet, f: Fragment, body: bytes) -> list[Event]:
        try:
            if zlib.crc32(body) != f.crc:
                raise BitstreamError("object CRC mismatch")
            if packet.type == PacketType.REFERENCE:
                reference = Reference.from_body(f.object_id, body)
            else:
                residual = Residual.from_body(body)
        except BitstreamError:
            self.stats.bad_objects += 1
            return []
        if packet.type == PacketType.REFRESH_RESIDUAL:
            self._residuals_done.append((f.object_id, f.length, f.crc, f.count))
            return [ResidualReady(residual, packet.timestamp)]
        if self.accept_reference is not None and not self.accept_reference(reference):
            self.stats.bad_objects += 1
            return []
        self.bank.pop(f.object_id, None)
        self.bank[f.object_id] = reference
        self._bank_ids[f.object_id] = (f.length, f.crc)
        while len(self.bank) > self.bank_size:
            oldest = next(r for r in self.bank if r != self._chain_ref)
            del self.bank[oldest], self._bank_ids[oldest]
        return [ReferenceReady(reference, packet.timestamp)]


def _intra(packet: Packet) -> bool:
    return packet.type in INTRA_TYPES
