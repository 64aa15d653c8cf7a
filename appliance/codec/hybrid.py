"""The hybrid codec's stream mode: a low-resolution real stream fused with a
high-resolution picture of the scene.

On the wire (docs/codec-bitstream.md, version 3):

- a **picture**: a REFERENCE object (AV1 key frame at full resolution) without keypoint
  data: the detail the receiver transfers;
- a **stream key**: a REFERENCE object of codec ``AV1_STREAM``: the low-resolution
  stream's key frame, with the id of the picture it is fused with and its own size;
- per frame one **frame packet** in the keypoint sequence space: ``STREAM_INTRA`` shows
  the key frame its object carries, ``STREAM_PREDICTED`` carries the next frame's OBUs.
  Chains, losses, REQUEST INTRA and REQUEST REFERENCE work exactly as for keypoints.

The sender decodes its own stream and fuses it as the receiver will: where the picture
no longer covers the face (the gate shows the real frame on most of it: the head turned,
the light changed), it sends a new picture.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from appliance.codec.bitstream import (
    MAX_OBJECT,
    BitstreamError,
    Codec,
    FrameReady,
    Packetizer,
    Reference,
)
from appliance.codec.fusion import Fuser, upscale
from appliance.codec.headers import picture_size
from appliance.codec.lowres import MIN_SIDE, LowResDecoder, LowResEncoder, low_size

STREAM_KEY = struct.Struct(">BBHH")  # flags, picture id, stream width, stream height
NAMES_PICTURE = 0x01  # the flag: the key's frames are fused with the picture it names
REFRESH_SHARE = 0.5  # of the face box the picture still shows: below it, a new picture
REFRESH_GAP_S = 2.0  # at most one new picture per this long (capture time)
PICTURE_QUALITY = 40  # a rung's picture unless it says otherwise
KEEP_PICTURES = 4
KEEP_KEYS = 8
Box = tuple[int, int, int, int]
# (codec, image, extra data, capture time ms) -> (object id, datagrams)
Publish = Callable[[Codec, bytes, bytes, int], tuple[int, list[bytes]]]


@dataclass(frozen=True)
class Rung:
    """One operating point of the stream mode."""

    side: int  # the stream has about side x side pixels (0: the frame's size, no fusion)
    qp: int  # the stream's constant quantizer, 0..63
    # the stream's frame rate at most (0: the camera's); the camera's frames between
    # are not sent (a rate, not a frame count: 15 fps is every second frame of a 30 fps
    # camera and every frame of a 15 fps one)
    fps: float = 0.0
    # the picture's, 1..100 (appliance.codec.pictures); 0: no picture, the stream alone
    # (at the lowest rates its bytes buy more as stream frames than as detail)
    picture_quality: int = PICTURE_QUALITY

    def __post_init__(self) -> None:
        if self.side < 0 or not 0 <= self.qp <= 63 or not 0 <= self.fps < 1000:
            raise ValueError(f"not a stream rung: {self}")
        if not 0 <= self.picture_quality <= 100:
            raise ValueError(f"picture quality must lie in 0..100, got {self.picture_quality}")

    @property
    def name(self) -> str:
        size = f"{self.side}²" if self.side else "full"
        picture = (
            "" if self.picture_quality == PICTURE_QUALITY else f" picture {self.picture_quality}"
        )
        rate = f" at {self.fps:g} fps" if self.fps else ""
        return f"{size} q{self.qp}{rate}{picture}"

    def step(self, camera_fps: float) -> int:
        """Send one camera frame in this many."""
        return max(1, round(camera_fps / self.fps)) if self.fps else 1


def pack_stream_key(picture_id: int | None, size: tuple[int, int]) -> bytes:
    if picture_id is None:
        return STREAM_KEY.pack(0, 0, *size)
    return STREAM_KEY.pack(NAMES_PICTURE, picture_id, *size)


def unpack_stream_key(data: bytes, frame: tuple[int, int]) -> tuple[int | None, tuple[int, int]]:
    """(picture id or None, stream size) of a stream key's data, checked against the
    frame size."""
    if len(data) != STREAM_KEY.size:
        raise BitstreamError(f"stream key data is {len(data)} bytes, not {STREAM_KEY.size}")
    flags, picture_id, width, height = STREAM_KEY.unpack(data)
    if width % 2 or height % 2 or min(width, height) < MIN_SIDE:
        raise BitstreamError(f"stream size {width}x{height} is not even or below {MIN_SIDE}")
    if width > frame[0] or height > frame[1]:
        raise BitstreamError(f"stream of {width}x{height} exceeds its {frame[0]}x{frame[1]} frame")
    return (picture_id if flags & NAMES_PICTURE else None), (width, height)


def face_share(gate: np.ndarray, box: Box | None, frame: tuple[int, int]) -> float:
    """The mean of the gate (stream size) inside ``box`` (frame px; None: everywhere)."""
    if box is None:
        return float(gate.mean())
    sx, sy = gate.shape[1] / frame[0], gate.shape[0] / frame[1]
    x0, y0 = int(box[0] * sx), int(box[1] * sy)
    x1, y1 = max(x0 + 1, math.ceil(box[2] * sx)), max(y0 + 1, math.ceil(box[3] * sy))
    return float(gate[y0:y1, x0:x1].mean())


class StreamSender:
    """The camera's side of the stream mode, for one ``Rung``."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        rung: Rung,
        packets: Packetizer,
        publish: Publish,
        picture_codec: Codec = Codec.AV1,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.packets, self.publish, self.picture_codec = packets, publish, picture_codec
        self.picture_id: int | None = None
        self.picture: np.ndarray | None = None
        self._low: np.ndarray | None = None  # the last stream frame, decoded
        self._fused_now = False  # whether it is fused (a picture sent before it)
        self._shown: np.ndarray | None = None
        self.share = math.nan  # of the face the picture showed, last frame
        self.bytes = {"picture": 0, "key": 0, "frames": 0}
        self.counts = {"pictures": 0, "keys": 0, "frames": 0}
        self._last_picture = -math.inf  # frame index
        self._last_sent = -math.inf
        self._index = 0
        self._want_picture = True
        self.retune(rung)

    def retune(self, rung: Rung) -> None:
        """Another rung from the next frame on (a new key frame; the picture stays)."""
        _ = self.shown  # the last frame's picture, made while its stream is still the one
        self.rung = rung
        self.size = low_size(self.width, self.height, rung.side)
        self.step = rung.step(self.fps)
        self.encoder = LowResEncoder(self.size, rung.qp, self.fps / self.step)
        self.decoder = LowResDecoder(self.size)
        self.fuser: Fuser | None = None
        self.key_id: int | None = None
        self._want_key = True
        if not rung.picture_quality:
            return
        if self.picture is not None:
            self.fuser = Fuser(self.picture, self.size)
        else:
            self._want_picture = True

    def want_key(self) -> None:
        self._want_key = True

    def want_picture(self) -> None:
        """A new picture (asked for by the receiver): at most one per REFRESH_GAP_S."""
        if self._index - self._last_picture >= REFRESH_GAP_S * self.fps:
            self._want_picture = True

    def close(self) -> None:
        self.encoder.close()

    def send(self, frame: np.ndarray, index: int, ts: int, face: Box | None) -> list[bytes]:
        """Datagrams for camera frame ``index`` (none between a rung's stream frames)."""
        if index - self._last_sent < self.step:  # the index may skip (frames dropped)
            return []
        self._last_sent = self._index = index
        out: list[bytes] = []
        picture: list[bytes] = []  # after the frame: the stream shows before it arrives
        fused = self.rung.picture_quality and self.size != (self.width, self.height)
        if self._want_picture and fused:
            picture = self._new_picture(frame, index, ts)
        coded = None if self._want_key else self.encoder.encode(frame)
        if coded is None or coded.key:
            coded = self.encoder.encode(frame, key=True)
            key_id, datagrams = self.publish(
                Codec.AV1_STREAM, coded.data, pack_stream_key(self._named(), self.size), ts
            )
            self.key_id, self._want_key = key_id, False
            self.bytes["key"] += sum(map(len, datagrams))
            self.counts["keys"] += 1
            out += datagrams
            low = self.decoder.decode(coded.data, key=True)
            frame_packets = [self.packets.stream_frame(b"", True, key_id, ts)]
        else:
            assert self.key_id is not None
            low = self.decoder.decode(coded.data, key=False)
            frame_packets = self.packets.stream_frames(coded.data, self.key_id, ts)
        self.bytes["frames"] += sum(map(len, frame_packets))
        self.counts["frames"] += 1
        out += frame_packets
        self._show(low, face, index, fresh=bool(picture))
        return out + picture

    def _named(self) -> int | None:
        """The picture the stream is fused with (None: none, the stream alone)."""
        return self.picture_id if self.fuser is not None else None

    def _new_picture(self, frame: np.ndarray, index: int, ts: int) -> list[bytes]:
        from appliance.codec.pictures import decode_picture, encode_picture

        image = encode_picture(frame, self.rung.picture_quality, self.picture_codec)
        self.picture_id, datagrams = self.publish(self.picture_codec, image, b"", ts)
        self.picture = decode_picture(self.picture_codec, image, (self.width, self.height))
        self.fuser = Fuser(self.picture, self.size)
        self._want_picture, self._want_key = False, True
        self._last_picture = index
        self.bytes["picture"] += sum(map(len, datagrams))
        self.counts["pictures"] += 1
        return datagrams

    @property
    def shown(self) -> np.ndarray | None:
        """What the receiver shows for the last stream frame, made when asked (the call
        itself needs only the coverage): a picture sent with this very frame goes after
        its frame packet (so the stream starts before the picture is through), so it is
        fused from the next frame on."""
        if self._shown is None and self._low is not None:
            if self._fused_now and self.fuser is not None:
                self._shown = self.fuser.fuse(self._low)[0]
            else:
                self._shown = upscale(self._low, (self.width, self.height))
        return self._shown

    def _show(self, low: np.ndarray, face: Box | None, index: int, fresh: bool) -> None:
        self._low, self._shown = low, None
        self._fused_now = self.fuser is not None and not fresh
        if self.fuser is None or fresh or self.fuser.native:
            return
        self.share = face_share(self.fuser.coverage(low), face, (self.width, self.height))
        since = index - self._last_picture
        if self.share < REFRESH_SHARE and since >= REFRESH_GAP_S * self.fps:
            self._want_picture = True


class StreamReceiver:
    """The far end of the stream mode: pictures and keys in, fused frames out."""

    def __init__(self) -> None:
        self.pictures: OrderedDict[int, np.ndarray] = OrderedDict()
        self.keys: OrderedDict[int, tuple[int | None, tuple[int, int], bytes]] = OrderedDict()
        self.missing: set[int] = set()  # pictures a key names that are not held: ask
        self._decoder: LowResDecoder | None = None
        self._fuser: tuple[int | None, int, Fuser] | None = None  # picture id, key id, fuser
        self._chain_key: int | None = None
        self._parts = b""  # the start of a frame that came in parts

    def add_picture(self, ref_id: int, picture: np.ndarray) -> None:
        self.keys.pop(ref_id, None)  # ids are reused (mod 256): the newer object wins
        self.pictures.pop(ref_id, None)
        self.pictures[ref_id] = picture
        while len(self.pictures) > KEEP_PICTURES:
            self.pictures.popitem(last=False)
        self.missing.discard(ref_id)
        self._fuser = None

    def add_key(self, ref: Reference, frame: tuple[int, int]) -> None:
        """A stream key object, checked (sizes before any decoder, then decoded once)."""
        picture_id, size = unpack_stream_key(ref.keypoints, frame)
        declared = picture_size(Codec.AV1, ref.image)
        if declared != size:
            raise BitstreamError(f"stream key declares {declared}, its data says {size}")
        LowResDecoder(size).decode(ref.image, key=True)
        self.pictures.pop(ref.ref_id, None)
        self.keys.pop(ref.ref_id, None)
        self.keys[ref.ref_id] = (picture_id, size, ref.image)
        while len(self.keys) > KEEP_KEYS:
            self.keys.popitem(last=False)
        if self._chain_key == ref.ref_id:  # the same id again, maybe new content
            self._chain_key = None

    def has_key(self, key_id: int) -> bool:
        return key_id in self.keys

    def frame(self, event: FrameReady, frame: tuple[int, int]) -> np.ndarray | None:
        """The picture for a released stream frame packet (None for a part of one);
        BitstreamError if it cannot be decoded (the caller breaks the chain)."""
        held = self.keys.get(event.ref_id)
        if held is None:
            raise BitstreamError(f"stream frame names key {event.ref_id}, not held")
        picture_id, size, key_data = held
        if event.intra:
            if event.coded:
                raise BitstreamError("a stream intra packet carries no data")
            self._decoder, self._parts = LowResDecoder(size), b""
            low = self._decoder.decode(key_data, key=True)
        else:
            if self._decoder is None or self._chain_key != event.ref_id:
                raise BitstreamError("predicted stream frame without its chain")
            if event.part:
                if len(self._parts) + len(event.coded) > MAX_OBJECT:
                    raise BitstreamError(f"a stream frame of more than {MAX_OBJECT} bytes")
                self._parts += event.coded
                return None
            data, self._parts = self._parts + event.coded, b""
            low = self._decoder.decode(data, key=False)
        self._chain_key = event.ref_id
        return self._fuse(picture_id, event.ref_id, size, low, frame)

    def broken(self) -> None:
        self._decoder, self._chain_key, self._parts = None, None, b""

    def _fuse(
        self, picture_id: int | None, key_id: int, size: tuple[int, int], low: np.ndarray,
        frame: tuple[int, int],
    ) -> np.ndarray:  # fmt: skip
        if size == frame:
            return low
        if picture_id is None:
            return upscale(low, frame)
        if self._fuser is None or self._fuser[:2] != (picture_id, key_id):
            picture = self.pictures.get(picture_id)
            if picture is None:
                self.missing.add(picture_id)
                return upscale(low, frame)
            self._fuser = (picture_id, key_id, Fuser(picture, size))
        fused, _ = self._fuser[2].fuse(low)
        return fused
