"""The keypoint codec end to end: ``Sender`` (camera) and ``Receiver`` (far end).

Sender, per frame (landmarks from the face tracker):

1. At start, on a REQUEST and whenever the closed loop needs one: a **reference** -- the
   frame itself, an AV1 key frame (``pictures``), with its keypoint data (reference
   shape and pose) -- sent before the intra packet that names it.
2. The **keypoint packet**: the frame's vector, intra every ``intra_period`` frames and
   after a reference or a REQUEST INTRA, otherwise predicted; entropy coded with the
   model's trained priors.
3. The **closed loop**: the sender runs the receiver's renderer on the same decoded
   landmarks and measures the face's MS-SSIM against the real frame. Below ``floor``,
   it sends the real pixels of the regions that failed (mouth, eyes: REPLACE residuals,
   which the receiver also keeps in its bank), worst first, until the floor holds; if
   they cannot lift it (the head turned, the light changed), a new reference. So the
   quality floor holds on every frame the receiver gets whole, and it costs bits only
   when the picture needs them.

Receiver: ``bitstream.Tracker`` orders and checks the packets; references and residuals
are decoded (``pictures``: dav1d, OpenCV); each released keypoint packet is rendered
(``appliance.codec.render``). Whatever arrives -- garbage, duplicates, losses, packets
out of order -- it never raises: bad input is counted, the last good picture stays on
screen, and it asks the sender for what it misses (REQUEST packets from ``requests``).
"""

from __future__ import annotations

import logging
import math
import random
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from appliance.codec import metrics
from appliance.codec.bitstream import (
    MTU,
    BitstreamError,
    Codec,
    FrameReady,
    Packetizer,
    PacketType,
    Reference,
    ReferenceReady,
    Report,
    Request,
    RequestKind,
    Residual,
    ResidualMode,
    ResidualReady,
    Tracker,
    parse,
    seq_diff,
)
from appliance.codec.bitstream import Packet as WirePacket  # keypoints has a Packet too
from appliance.codec.congestion import ArrivalMonitor, BandwidthEstimator
from appliance.codec.entropy import EntropyError, decode_vector, encode_vector, scale_index
from appliance.codec.hybrid import Rung, StreamReceiver, StreamSender
from appliance.codec.keypoints import (
    POINTS,
    KeypointCodecError,
    KeypointCodecModel,
    KeypointEncoder,
    Packet,
    check_landmarks,
)
from appliance.codec.ladder import RateController
from appliance.codec.pacer import Pacer
from appliance.codec.pictures import decode_picture, encode_picture, reference_codecs
from appliance.codec.render import REGIONS, FaceRenderer, region_box, region_mask
from appliance.logs import Throttle

log = logging.getLogger(__name__)

CLOCK = 1000  # timestamps, Hz (ms, wrapping at 2**16)
# The largest frame a receiver accepts unless told otherwise (width x height): a forged
# reference may declare up to 65535x65535, and the receiver holds 8 references and
# renders at the stream's size.
MAX_FRAME_PIXELS = 1920 * 1080
KEEP_LANDMARKS = 64  # decoded frames a residual may still name
# what bad input raises while it is decoded; anything else is a bug, counted as a fault
_BAD_INPUT = (BitstreamError, EntropyError, KeypointCodecError)
HISTORY = 108_000  # per-frame figures kept
# the stream mode answers the same REQUEST at most this often: its answer (a key, a
# picture) is still on its way, and a burst of answers would fill the very queue that
# delayed it
ANSWER_GAP_S = 1.0
KEYPOINT_DATA_FORMAT = 1
_SHAPE_SCALE = scale_index(24.0)  # reference shape symbols: about +-24 steps of 1/128 cm
_KEYPOINT_DATA = struct.Struct(">BH")  # format, coded shape length


@dataclass(frozen=True)
class CodecSettings:
    """What a call trades: bits against the floor the picture may never fall below."""

    floor: float = 0.90  # face MS-SSIM of every decoded frame
    reference_quality: int = 60  # 1..100 (WebP's scale; AV1 maps it to its quantizer)
    reference_codec: Codec = Codec.AV1  # or WEBP; AV1 where this machine has it
    # WebP 1..100; None: reference_quality + 25. A residual only has to lift the face to
    # the floor, and one that follows the reference's quality does that as well for fewer
    # bytes (lp_d10 at floor 0.75: quality 50 instead of 75, 22% fewer residual bytes,
    # the same MS-SSIM)
    residual_quality: int | None = None
    intra_period: int = 15  # frames
    max_residuals: int = 3  # regions patched per frame before a new reference instead
    closed_loop: bool = True
    mtu: int = MTU
    # None: keypoints (the mesh warp); a rung: the hybrid's low-resolution real stream
    # fused with a full-resolution picture (appliance.codec.hybrid)
    rung: Rung | None = None
    # the hybrid at this rate, kbit/s: its ladder walked by what the stream really costs
    # (appliance.codec.ladder); overrides ``rung``
    target_kbps: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must lie in [0, 1), got {self.floor}")
        for name in ("reference_quality", "residual_quality"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 100:
                raise ValueError(f"{name} must lie in 1..100")
        if self.reference_codec not in (Codec.AV1, Codec.WEBP):
            raise ValueError(f"references are AV1 or WEBP, not {self.reference_codec.name}")
        if self.intra_period < 1 or self.max_residuals < 0:
            raise ValueError("intra_period must be >= 1 and max_residuals >= 0")
        if self.target_kbps is not None and not 0 < self.target_kbps < math.inf:
            raise ValueError(f"target_kbps must be positive, got {self.target_kbps}")

    @property
    def region_quality(self) -> int:
        """The residuals' WebP quality."""
        if self.residual_quality is not None:
            return self.residual_quality
        return min(100, self.reference_quality + 25)


@dataclass
class SenderStats:
    frames: int = 0
    skipped: int = 0  # frames without a face: nothing sent
    keypoint_bytes: int = 0  # whole datagrams, headers included
    keypoint_packets: int = 0
    reference_bytes: int = 0
    references: int = 0
    residual_bytes: int = 0
    residuals: dict[str, int] = field(default_factory=dict)
    stream_bytes: int = 0  # the stream mode's pictures, keys and frames
    below_floor: int = 0  # frames the loop could not lift to the floor
    # the receiver's face MS-SSIM and the sender's ms, per frame: the last hour at 30 fps
    # (a day-long call must not grow without bound)
    quality: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    loop_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))

    @property
    def total_bytes(self) -> int:
        return self.keypoint_bytes + self.reference_bytes + self.residual_bytes + self.stream_bytes


def _finite(iris: np.ndarray | None) -> np.ndarray | None:
    """Iris centres (2, 2) if the tracker found both, else None."""
    if iris is None:
        return None
    centres = np.asarray(iris, np.float64).reshape(2, 2)
    return centres if np.all(np.isfinite(centres)) else None


def _corners(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return x, y, x + w, y + h


def pack_keypoint_data(model: KeypointCodecModel, shape: np.ndarray, pose: np.ndarray) -> bytes:
    """A reference's keypoint data: its shape symbols and its own (intra) vector."""
    coded_shape = encode_vector(shape, _SHAPE_SCALE * np.ones(len(shape), np.int64))
    head = _KEYPOINT_DATA.pack(KEYPOINT_DATA_FORMAT, len(coded_shape))
    return head + coded_shape + model.priors.encode(pose, intra=True)


def unpack_keypoint_data(model: KeypointCodecModel, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(shape symbols (1404,), vector (6 + K,)) of a reference; BitstreamError if bad."""
    if len(data) < _KEYPOINT_DATA.size:
        raise BitstreamError("reference keypoint data truncated")
    version, size = _KEYPOINT_DATA.unpack_from(data)
    if version != KEYPOINT_DATA_FORMAT:
        raise BitstreamError(f"reference keypoint data format {version}")
    start = _KEYPOINT_DATA.size
    try:
        scales = _SHAPE_SCALE * np.ones(POINTS * 3, np.int64)
        shape = decode_vector(data[start : start + size], scales)
        vector = model.priors.decode(data[start + size :], intra=True)
        return shape.astype(np.int32), model.check_symbols(vector).astype(np.int32)
    except (EntropyError, KeypointCodecError) as exc:
        raise BitstreamError(f"reference keypoint data: {exc}") from None


class Sender:
    """The camera's side. ``send`` one frame at a time; ``feedback`` for REQUESTs."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: float = 30.0,
        settings: CodecSettings | None = None,
        model: KeypointCodecModel | None = None,
        stream: int | None = None,
        model_id: int = 1,
    ) -> None:
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.settings = settings or CodecSettings()
        self.reference_codec = self.settings.reference_codec
        if self.reference_codec not in reference_codecs():
            log.warning("no %s encoder here: references go as WebP", self.reference_codec.name)
            self.reference_codec = Codec.WEBP
        self.model = model or KeypointCodecModel.load()
        self.model_id = model_id
        self.stream = random.randrange(1 << 16) if stream is None else stream
        self.packets = Packetizer(self.stream, self.settings.mtu)
        self.encoder = KeypointEncoder(self.model, self.width, self.height)
        self.renderer = FaceRenderer(self.width, self.height)
        self.stats = SenderStats()
        self.ref_id = -1
        self._shown: np.ndarray | None = None  # keypoints: the receiver's last picture
        self._since_intra = 0
        self._want_intra = False
        self._want_reference = True
        self._sent: OrderedDict[int, Reference] = OrderedDict()  # for REQUEST REFERENCE
        self._resend: list[int] = []
        self.stream_sender: StreamSender | None = None
        self.pacer = Pacer(self.fps)
        self._index = 0  # the last frame sent
        self._answered: dict[tuple[int, int], int] = {}  # (kind, ref id) -> frame index
        self._kinds: dict[int, Codec] = {}  # ref id -> what was last sent under it
        self.controller: RateController | None = None
        self.estimator: BandwidthEstimator | None = None
        if self.settings.target_kbps is not None:
            self.controller = RateController(
                self.settings.target_kbps, self.width, self.height, self.fps
            )
            # the receiver's reports lower it below the user's cap when the network must
            self.estimator = BandwidthEstimator(self.settings.target_kbps)
        self.set_rung(self.controller.rung if self.controller else self.settings.rung)

    @property
    def shown(self) -> np.ndarray | None:
        """What the receiver shows for the last frame sent (stream mode: made when
        asked; the call does not need it)."""
        if self.stream_sender is not None and self.stream_sender.shown is not None:
            return self.stream_sender.shown
        return self._shown

    def set_rung(self, rung: Rung | None) -> None:
        """Keypoints (None) or the stream mode at ``rung``, from the next frame on."""
        if rung is None:
            if self.stream_sender is not None:
                self.stream_sender.close()
                self.stream_sender = None
                self._want_reference = True  # the keypoints need their own reference
            return
        if self.stream_sender is None:
            self.stream_sender = StreamSender(
                self.width, self.height, self.fps, rung, self.packets, self._publish,
                self.reference_codec,
            )  # fmt: skip
        elif rung != self.stream_sender.rung:
            self.stream_sender.close()
            self.stream_sender.retune(rung)

    def close(self) -> list[bytes]:
        """End the call's encoders; the datagrams the pacer still held (a file of the
        call wants them; a live call may drop them)."""
        if self.stream_sender is not None:
            self.stream_sender.close()
        return self.pacer.flush()

    def send(
        self,
        frame: np.ndarray,
        landmarks: np.ndarray | None,
        index: int,
        iris: np.ndarray | None = None,
    ) -> list[bytes]:
        """Datagrams for frame ``index`` (its capture time is index / fps): ``landmarks``
        (468, 3) and ``iris`` centres (2, 2) px from the tracker (None: no face/iris)."""
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, the stream is "
                f"{self.width}x{self.height}"
            )
        self.stats.frames += 1
        ts = round(index * CLOCK / self.fps) % (1 << 16)
        if self.stream_sender is not None:
            return self._send_stream(frame, landmarks, index, ts)
        if landmarks is None:
            self.stats.skipped += 1
            return []
        points = check_landmarks(landmarks)
        start = time.perf_counter()
        out = self._resent(ts)
        fresh = self._want_reference
        if fresh:
            out += self._reference(frame, points, iris, ts)
        packet, decoded = self._encode(points, iris)
        shown = self.renderer.render(self.ref_id, decoded)
        patches: list[tuple[Residual, np.ndarray]] = []
        quality = math.nan
        if self.settings.closed_loop:
            quality = metrics.face_ms_ssim(frame, shown, points)
            if quality < self.settings.floor and not fresh:
                shown, patches, quality = self._patch(frame, points, decoded, shown)
                if quality < self.settings.floor:
                    # the regions cannot lift it (a head turn, new light): this very
                    # frame becomes the new reference, and its packet an intra on it
                    out += self._reference(frame, points, iris, ts)
                    packet, decoded = self._encode(points, iris)
                    shown = self.renderer.render(self.ref_id, decoded)
                    patches = []
                    quality = metrics.face_ms_ssim(frame, shown, points)
            self.stats.below_floor += int(quality < self.settings.floor)
            self.stats.quality.append(quality)
        out.append(self._keypoints(packet, ts))
        for residual, patch in patches:
            self.renderer.paste(None, residual.region, patch, _corners(residual.box), decoded)
            out += self._residual(residual, ts)
        self._shown = shown
        self.stats.loop_ms.append((time.perf_counter() - start) * 1e3)
        return out

    def _resent(self, ts: int) -> list[bytes]:
        out: list[bytes] = []
        for ref_id in self._resend:
            out += self.packets.reference(self._sent[ref_id], ts)
        self._resend.clear()
        return out

    def _send_stream(
        self, frame: np.ndarray, landmarks: np.ndarray | None, index: int, ts: int
    ) -> list[bytes]:
        """The stream mode: it sends whatever is in view, a face or not; pictures and keys
        paced over the following frames."""
        assert self.stream_sender is not None
        start = time.perf_counter()
        self._index = index
        out = self._resent(ts)
        face = None
        if landmarks is not None:
            face = metrics.face_box(check_landmarks(landmarks), self.width, self.height)
        sent = self.stream_sender.send(frame, index, ts, face)
        if self.controller is not None:
            self.set_rung(self.controller.sent(sum(map(len, out + sent)), index))
        if self.estimator is not None:  # a rate to keep: objects paced to it
            out = self.pacer.send(out + sent, self.estimator.kbps)
        else:  # a fixed rung (an evaluation, a file): as fast as they come
            out += sent
        self.stats.stream_bytes += sum(map(len, out))  # what left, resends included
        self.stats.loop_ms.append((time.perf_counter() - start) * 1e3)
        return out

    def _answer(self, kind: RequestKind, ref_id: int) -> bool:
        """Whether to answer this REQUEST now (stream mode: once per ANSWER_GAP_S, and
        not while the object asked for is still in the pacer)."""
        if self.stream_sender is None:
            return True
        if kind == RequestKind.REFERENCE and self.pacer.holds(PacketType.REFERENCE, ref_id):
            return False
        key = (kind, ref_id if kind == RequestKind.REFERENCE else 0)  # the rest: a hint
        last = self._answered.get(key)
        if last is not None and self._index - last < ANSWER_GAP_S * self.fps:
            return False
        self._answered[key] = self._index
        while len(self._answered) > 64:
            del self._answered[next(iter(self._answered))]
        return True

    def _publish(self, codec: Codec, image: bytes, data: bytes, ts: int) -> tuple[int, list[bytes]]:
        """Send a picture object of the stream mode; its id."""
        self.ref_id = (self.ref_id + 1) % 256
        ref = Reference(self.ref_id, codec, self.width, self.height, 0, image, data)
        self._remember(ref)
        self.stats.references += 1  # pictures and keys: reference objects on the wire
        return self.ref_id, self.packets.reference(ref, ts)

    def _remember(self, ref: Reference) -> None:
        self._kinds[ref.ref_id] = ref.codec
        self._sent[ref.ref_id] = ref
        while len(self._sent) > 8:
            self._sent.popitem(last=False)

    def feedback(self, datagram: bytes) -> None:
        """A receiver's REQUEST: an intra next, a reference again, or a new one. Anything
        else (garbage, another stream's packets) is ignored."""
        try:
            packet = parse(datagram)
        except BitstreamError:
            return
        request = packet.payload
        if packet.stream != self.stream:
            return
        if isinstance(request, Report):
            if self.estimator is not None and self.controller is not None:
                self.controller.retarget(self.estimator.update(request))
            return
        if not isinstance(request, Request):
            return
        stream = self.stream_sender
        if not self._answer(request.kind, request.ref_id):
            return
        if request.kind == RequestKind.INTRA:
            if stream is not None:
                stream.want_key()
            self._want_intra = True
        elif request.kind == RequestKind.REFERENCE and request.ref_id in self._sent:
            if request.ref_id not in self._resend:
                self._resend.append(request.ref_id)  # the same bytes again
        elif stream is not None:
            # a key or picture no longer held: a new one of its kind; REFRESH (an object
            # was lost) is answered with a key, the stream's cheapest fresh start
            if request.kind == RequestKind.REFERENCE and self._kinds.get(request.ref_id) != (
                Codec.AV1_STREAM
            ):
                stream.want_picture()
            else:
                stream.want_key()
        else:  # REFRESH, or a reference no longer held: a new one (it empties the bank)
            self._want_reference = True

    # --- internals --------------------------------------------------------------------

    def _intra_due(self) -> bool:
        due = self._want_intra or self._since_intra + 1 >= self.settings.intra_period
        self._want_intra = False
        return due

    def _reference(
        self, frame: np.ndarray, points: np.ndarray, iris: np.ndarray | None, ts: int
    ) -> list[bytes]:
        self._want_reference = False
        self.ref_id = (self.ref_id + 1) % 256
        image = encode_picture(frame, self.settings.reference_quality, self.reference_codec)
        shape = self.encoder.set_reference(points)  # the next packet is intra
        reference = self.model.decode_reference(shape)
        params = self.model.analyze(points, self.width, self.height, reference, _finite(iris))
        q = self.model.quantize(params)
        ref = Reference(
            self.ref_id,
            self.reference_codec,
            self.width,
            self.height,
            self.model_id,
            image,
            pack_keypoint_data(self.model, shape, q),
        )
        landmarks = self.model.render_points(q, self.width, self.height, reference)
        picture = decode_picture(self.reference_codec, image, (self.width, self.height))
        self.renderer.add_reference(self.ref_id, picture, landmarks)
        datagrams = self.packets.reference(ref, ts)
        self._remember(ref)
        self.stats.references += 1
        self.stats.reference_bytes += sum(map(len, datagrams))
        return datagrams

    def _encode(self, points: np.ndarray, iris: np.ndarray | None) -> tuple[Packet, np.ndarray]:
        """The frame's packet, and the points the receiver will decode from it."""
        packet = self.encoder.encode(points, intra=self._intra_due(), iris=_finite(iris))
        q, reference = self.encoder.previous, self.encoder.reference
        assert q is not None and reference is not None
        return packet, self.model.render_points(q, self.width, self.height, reference)

    def _keypoints(self, packet: Packet, ts: int) -> bytes:
        coded = self.model.priors.encode(packet.symbols, packet.intra)
        datagram = self.packets.keypoints(coded, packet.intra, self.ref_id, ts)
        self.stats.keypoint_bytes += len(datagram)
        self.stats.keypoint_packets += 1
        self._since_intra = 0 if packet.intra else self._since_intra + 1
        return datagram

    def _residual(self, residual: Residual, ts: int) -> list[bytes]:
        datagrams = self.packets.residual(residual, ts)
        self.stats.residual_bytes += sum(map(len, datagrams))
        name = residual.region.name.lower()
        self.stats.residuals[name] = self.stats.residuals.get(name, 0) + 1
        return datagrams

    def _patch(
        self, frame: np.ndarray, points: np.ndarray, decoded: np.ndarray, shown: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[Residual, np.ndarray]], float]:
        """Real pixels for the worst regions until the floor holds (nothing kept yet)."""
        seq = self.packets.peek("frames")
        patched = shown.copy()
        patches = []
        quality = 0.0
        for region in self._worst_regions(frame, patched, decoded):
            box = region_box(region, decoded, self.width, self.height)
            x0, y0, x1, y1 = box
            image = encode_picture(frame[y0:y1, x0:x1], self.settings.region_quality)
            patch = decode_picture(Codec.WEBP, image)
            self.renderer.paste(patched, region, patch, box, decoded, keep=False)
            residual = Residual(
                seq, self.ref_id, region, Codec.WEBP, ResidualMode.REPLACE,
                (x0, y0, x1 - x0, y1 - y0), image,
            )  # fmt: skip
            patches.append((residual, patch))
            quality = metrics.face_ms_ssim(frame, patched, points)
            if quality >= self.settings.floor:
                break
        return patched, patches, quality

    def _worst_regions(self, frame: np.ndarray, shown: np.ndarray, decoded: np.ndarray) -> list:
        """Regions ordered by their mean luma error, worst first (up to max_residuals)."""
        scores = []
        for region in REGIONS:
            box = region_box(region, decoded, self.width, self.height)
            x0, y0, x1, y1 = box
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            alpha = region_mask(region, decoded, box)
            diff = np.abs(metrics.luma(frame[y0:y1, x0:x1]) - metrics.luma(shown[y0:y1, x0:x1]))
            scores.append((float((alpha * diff).sum() / max(alpha.sum(), 1.0)), region))
        scores.sort(key=lambda s: -s[0])
        return [region for _, region in scores[: self.settings.max_residuals]]


class ObjectGaps:
    """Notices lost object packets (references, residuals) from the objects sequence
    space: a number still missing ``patience`` datagrams after a later one arrived is
    lost (waiting that long lets reordered packets in)."""

    def __init__(self, patience: int = 8) -> None:
        self.patience = patience
        self.highest: int | None = None
        self.missing: dict[int, int] = {}  # seq -> datagrams seen since it went missing
        self.lost = 0

    def object_seen(self, seq: int) -> None:
        if self.highest is None:
            self.highest = seq
            return
        ahead = seq_diff(seq, self.highest)
        if ahead > 256:  # a jump, not a gap: the sender restarted or a long outage
            self.missing.clear()
        elif ahead > 0:
            for k in range(1, ahead):
                self.missing[(self.highest + k) % (1 << 16)] = 0
        if ahead > 0:
            self.highest = seq
        self.missing.pop(seq, None)

    def tick(self) -> bool:
        """One more datagram arrived; True when a missing object is now taken as lost."""
        for seq in self.missing:
            self.missing[seq] += 1
        expired = [seq for seq, age in self.missing.items() if age > self.patience]
        for seq in expired:
            del self.missing[seq]
        self.lost += len(expired)
        return bool(expired)


@dataclass
class ReceiverStats:
    frames: int = 0  # keypoint packets rendered
    references: int = 0
    residuals: int = 0
    errors: int = 0  # objects or vectors that would not decode, or were refused
    requests: int = 0
    faults: int = 0  # unexpected exceptions while handling a datagram (bugs): survived


class Receiver:
    """The far end: ``feed`` datagrams, read ``picture``; send back ``requests()``.

    Nothing a datagram says is trusted before it is checked, and a bad one leaves the
    state as it was: the first reference that decodes fixes the stream's ``size`` (a
    sender keeps one size per stream id; at most ``max_pixels``), a reference of another
    size, or whose picture header declares another one, is refused before any decoder
    runs, and what is refused is asked for again (REQUEST) instead of raised.
    """

    def __init__(
        self,
        model: KeypointCodecModel | None = None,
        stream: int | None = None,
        request_interval: float = 0.2,
        max_pixels: int = MAX_FRAME_PIXELS,
    ) -> None:
        self.model = model or KeypointCodecModel.load()
        self.tracker = Tracker(stream, accept_reference=self._accept_reference)
        self.max_pixels = max_pixels
        self.size: tuple[int, int] | None = None  # the stream's, set by its first reference
        self.renderer: FaceRenderer | None = None
        self.picture: np.ndarray | None = None
        self.frame_seq: int | None = None  # keypoint seq of the picture on screen
        self.stats = ReceiverStats()
        self.request_interval = request_interval
        self._landmarks: OrderedDict[int, np.ndarray] = OrderedDict()  # seq -> decoded, recent
        self._references: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> shape, lms
        self._previous: np.ndarray | None = None
        self._chain_ref: int | None = None
        self._last_request = -math.inf
        self._packets = Packetizer(0)
        self._gaps = ObjectGaps()
        self._refresh = False
        self._newest: int | None = None  # id of the newest reference
        self._asks: set[int] = set()  # references refused: asked for again
        self.streams = StreamReceiver()
        self.arrivals = ArrivalMonitor()
        self._log = Throttle()

    def feed(self, datagram: bytes, now: float | None = None) -> bool:
        """True when the picture changed. Never raises: bad input is counted (``stats``),
        and so is any other exception (``faults``), and the state stays as it was.
        ``now``: the arrival time, s (default: the monotonic clock), for the reports."""
        try:  # parsed once here, for the tracker and for the watch on arrivals
            packet = parse(datagram)
        except BitstreamError:
            self.tracker.stats.garbage += 1
            return False
        try:
            self._watch(packet, len(datagram), time.monotonic() if now is None else now)
            events = self.tracker.push(packet)
        except Exception as exc:  # a bug: one datagram must not end the call
            self._fault(exc)
            return False
        changed = False
        for event in events:
            try:
                changed |= self._handle(event)
            except Exception as exc:
                if isinstance(exc, _BAD_INPUT):
                    self.stats.errors += 1
                    self._note("codec receiver: %s", exc)
                else:
                    self._fault(exc)
                self._recover(event)
        return changed

    def _recover(self, event: object) -> None:
        if isinstance(event, FrameReady):
            self.tracker.break_chain()
            self._previous = None
            self.streams.broken()
            if event.stream:
                held = self.streams.has_key(event.ref_id)
            else:
                held = self.renderer is not None and self.renderer.has_reference(event.ref_id)
            if not held:
                self.tracker.forget_reference(event.ref_id)  # so that it is asked for
        elif isinstance(event, ResidualReady):
            self._refresh = True  # the bank now lacks what the sender's holds

    def _fault(self, exc: BaseException) -> None:
        self.stats.faults += 1
        if self._log.ready():
            log.warning("codec receiver: unexpected %s (%d so far), call goes on",
                        type(exc).__name__, self.stats.faults, exc_info=exc)  # fmt: skip

    def _note(self, message: str, *args: object) -> None:
        if self._log.ready():
            log.info(message, *args)
        else:
            log.debug(message, *args)

    def requests(self, now: float | None = None) -> list[bytes]:
        """REQUEST datagrams for the sender, at most one round per ``request_interval``."""
        now = time.monotonic() if now is None else now
        if self.tracker.stream is None:
            return []
        self._packets.stream = self.tracker.stream
        report = self.arrivals.report(now * 1000.0)
        reports = [] if report is None else [self._packets.report(report, 0)]
        if now - self._last_request < self.request_interval:
            return reports
        last = self.frame_seq or 0
        wanted = sorted({*self.tracker.wanted_references, *self._asks, *self.streams.missing})
        self._asks.clear()
        self.streams.missing.clear()
        out = [self._packets.request(RequestKind.REFERENCE, ref, last, 0) for ref in wanted]
        if self._refresh:
            self._refresh = False
            out.append(self._packets.request(RequestKind.REFRESH, self._chain_ref or 0, last, 0))
        if self.tracker.wants_intra:
            out.append(self._packets.request(RequestKind.INTRA, self._chain_ref or 0, last, 0))
        if out:
            self._last_request = now
            self.stats.requests += len(out)
        return reports + out

    def _watch(self, packet: WirePacket, size: int, now: float) -> None:
        """A lost residual leaves this receiver's bank short of the sender's: ask for a
        new reference, which empties both. And what arrived when, for the reports."""
        if self.tracker.stream is not None and packet.stream != self.tracker.stream:
            return
        self.arrivals.arrived(packet, size, now * 1000.0)
        if packet.type in (PacketType.REFERENCE, PacketType.REFRESH_RESIDUAL):
            self._gaps.object_seen(packet.seq)
        if self._gaps.tick():
            self._refresh = True

    def _handle(self, event: object) -> bool:
        if isinstance(event, ReferenceReady):
            return False  # taken in by _accept_reference already
        if isinstance(event, ResidualReady):
            return self._residual(event.residual)
        assert isinstance(event, FrameReady)
        if event.stream:
            return self._stream_frame(event)
        return self._keypoints(event)

    def _accept_reference(self, ref: Reference) -> bool:
        """The tracker's question before a reference enters its bank: decoded and kept, or
        refused (counted, asked for again) with nothing changed."""
        try:
            self._reference(ref)
            return True
        except Exception as exc:
            if isinstance(exc, _BAD_INPUT):
                self.stats.errors += 1
                self._note("codec receiver: reference %d refused: %s", ref.ref_id, exc)
            else:
                self._fault(exc)
            self._asks.add(ref.ref_id)
            return False

    def _reference(self, ref: Reference) -> None:
        size = (ref.width, ref.height)
        if self.size is not None and size != self.size:  # a new size is a new stream id
            raise BitstreamError(
                f"reference {ref.ref_id} is {ref.width}x{ref.height}, "
                f"the stream is {self.size[0]}x{self.size[1]}"
            )
        if ref.width * ref.height > self.max_pixels:
            raise BitstreamError(
                f"reference of {ref.width}x{ref.height} exceeds {self.max_pixels} pixels"
            )
        if ref.codec == Codec.AV1_STREAM:
            self.streams.add_key(ref, size)
            self.size = size
            self.stats.references += 1
            return
        picture = decode_picture(ref.codec, ref.image, size)
        if not ref.keypoints:  # a picture of the stream mode: detail to fuse
            self.streams.add_picture(ref.ref_id, picture)
            self.size = size
            self.stats.references += 1
            return
        shape_symbols, vector = unpack_keypoint_data(self.model, ref.keypoints)
        shape = self.model.decode_reference(shape_symbols)
        landmarks = self.model.render_points(vector, ref.width, ref.height, shape)
        newest = self._newest is None or 0 < (ref.ref_id - self._newest) % 256 < 128
        renderer = self.renderer if self.renderer is not None else FaceRenderer(*size)
        try:
            renderer.add_reference(ref.ref_id, picture, landmarks, newest=newest)
        except ValueError as exc:  # landmarks no mesh can be made of
            raise BitstreamError(f"reference {ref.ref_id}: {exc}") from None
        # nothing below can fail: the reference is in
        self.renderer, self.size = renderer, size
        if newest:
            self._newest = ref.ref_id
        self._references[ref.ref_id] = (shape, landmarks)
        for old in [r for r in self._references if not renderer.has_reference(r)]:
            del self._references[old]
        self.stats.references += 1

    def _keypoints(self, event: FrameReady) -> bool:
        held = self.renderer is not None and self.renderer.has_reference(event.ref_id)
        if self.renderer is None or not held or event.ref_id not in self._references:
            raise BitstreamError(f"keypoints name reference {event.ref_id}, not held")
        values = self.model.priors.decode(event.coded, event.intra)
        if not event.intra:
            if self._previous is None or self._chain_ref != event.ref_id:
                raise BitstreamError("predicted packet without its chain")
            values = values + self._previous
        q = self.model.check_symbols(values)
        self.streams.broken()
        shape, _ = self._references[event.ref_id]
        r = self.renderer
        landmarks = self.model.render_points(q, r.width, r.height, shape)
        self.picture = r.render(event.ref_id, landmarks)
        self._previous, self._chain_ref, self.frame_seq = q, event.ref_id, event.seq
        self._landmarks.pop(event.seq, None)
        self._landmarks[event.seq] = landmarks
        for old in [s for s in self._landmarks if abs(seq_diff(event.seq, s)) > KEEP_LANDMARKS]:
            del self._landmarks[old]
        while len(self._landmarks) > KEEP_LANDMARKS:  # after sequence jumps
            self._landmarks.popitem(last=False)
        self.stats.frames += 1
        return True

    def _stream_frame(self, event: FrameReady) -> bool:
        assert self.size is not None  # a key is held, so a reference fixed the size
        picture = self.streams.frame(event, self.size)
        self._previous, self._chain_ref = None, event.ref_id
        if picture is None:  # a part: the frame is not complete yet
            return False
        self.picture, self.frame_seq = picture, event.seq
        self.stats.frames += 1
        return True

    def _residual(self, residual: Residual) -> bool:
        landmarks = self._landmarks.get(residual.frame_seq)
        if self.renderer is None or landmarks is None:
            raise BitstreamError("residual for a frame this receiver never rendered")
        x, y, w, h = residual.box
        width, height = self.renderer.width, self.renderer.height
        if w < 1 or h < 1 or x + w > width or y + h > height:
            raise BitstreamError("residual box outside the frame")
        if residual.region in REGIONS and 4 * w * h > width * height:
            # a banked picture of a mouth or an eye: 36 of them stay, so each is bounded
            raise BitstreamError(f"residual box {w}x{h} is too large for a {residual.region.name}")
        patch = decode_picture(residual.codec, residual.image, (w, h))
        on_screen = residual.frame_seq == self.frame_seq and self.picture is not None
        target = (
            self.picture
            if on_screen
            else np.zeros((self.renderer.height, self.renderer.width, 3), np.uint8)
        )
        assert target is not None
        if residual.mode == ResidualMode.ADD:
            area = target[y : y + h, x : x + w].astype(np.int16) + patch.astype(np.int16) - 128
            target[y : y + h, x : x + w] = np.clip(area, 0, 255).astype(np.uint8)
        else:
            self.renderer.paste(target, residual.region, patch, _corners(residual.box), landmarks)
        self.stats.residuals += 1
        return on_screen
