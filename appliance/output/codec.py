"""The face codec (hybrid or keypoints) as a sink: the processed picture's lead face, sent over UDP.

Why a sink: the codec needs the final picture (after framing, background, super-
resolution) and the faces mapped into it, which is exactly what sinks get. It owns one
non-blocking UDP socket: it sends the sender's datagrams to the configured destination
and reads, before each frame, the REQUESTs the far end sends back to that socket. A
missing or unreachable receiver never stops the camera: send errors are counted (and
logged at most once in a while), the frames keep coming. Settings apply between frames;
new settings or a new picture size start a new stream (new stream id, a fresh
reference), which a receiver follows by itself.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.codec.bitstream import Codec
from appliance.codec.keypoints import KeypointCodecModel
from appliance.codec.session import CodecSettings, Sender
from appliance.codec.transport import drain, open_udp, parse_udp_uri
from appliance.frame import Frame
from appliance.logs import LOG_EVERY_S, Throttle
from appliance.pipeline.stage import Sink, settings_from

log = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0  # the kbit/s shown is over this many seconds


@dataclass(frozen=True)
class CodecSinkSettings:
    """The sink's view of the ``codec`` config section (the sink stays schema-free)."""

    enabled: bool = False
    destination: str = "udp://127.0.0.1:5004"
    mode: str = "hybrid"
    max_kbps: float = 20.0
    floor: float = 0.80
    reference_quality: int = 40
    reference_codec: str = "av1"
    intra_period: int = 15

    def codec(self) -> CodecSettings:
        return CodecSettings(
            floor=self.floor,
            reference_quality=self.reference_quality,
            reference_codec=Codec[self.reference_codec.upper()],
            intra_period=self.intra_period,
            target_kbps=self.max_kbps if self.mode == "hybrid" else None,
        )


def _extent(face: Any) -> float:
    """Area of the bounding box of a face's landmarks, px^2 (0 if they are unusable)."""
    points = np.asarray(face.landmarks, np.float64)[:, :2]
    if not np.all(np.isfinite(points)):
        return 0.0
    width, height = points.max(axis=0) - points.min(axis=0)
    return float(width * height)


def lead_face(frame: Frame) -> Any | None:
    """The largest face of the frame (by its landmarks' box), or None."""
    faces = frame.meta.get("faces") or []
    return max(faces, key=_extent) if faces else None


def face_points(face: Any | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(landmarks (468, 3), iris centres (2, 2)) of a face; (None, None) when there is no
    usable face (a tracker's NaNs count as none)."""
    if face is None:
        return None, None
    landmarks = np.asarray(face.landmarks, np.float64)
    if landmarks.shape != (468, 3) or not np.all(np.isfinite(landmarks)):
        return None, None
    iris = getattr(face, "iris", None)  # Face.iris: (2, 5, 2), the centre first
    centres = None if iris is None else np.asarray(iris, np.float64)[:, 0, :2]
    return landmarks, centres


class CodecSink(Sink):
    """Sends the lead face of every frame to ``settings.destination`` while enabled."""

    name = "codec"

    def __init__(
        self,
        settings: CodecSinkSettings | None = None,
        fps: float = 30.0,
        model: KeypointCodecModel | None = None,
    ) -> None:
        self.settings = settings or CodecSinkSettings()
        self.fps = float(fps)  # the capture rate: the packets' timestamps
        self.model = model  # None until loaded (off the frame path)
        self.load_error: str | None = None
        self._loader: threading.Thread | None = None
        self.sender: Sender | None = None
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] | None = None  # the destination, resolved
        self.frames = 0
        self.datagrams = 0
        self.bytes = 0
        self.requests = 0  # datagrams read back from the far end
        self.send_errors = 0
        self._start = 0.0  # capture time of the stream's first frame
        self._index = -1
        self._send_log = Throttle()
        self._resolve_log = Throttle()
        self._lock = threading.Lock()  # the rate window: stats() runs on another thread
        self._sent: deque[tuple[float, int]] = deque()  # (time, bytes)
        if self.settings.enabled:
            self._ready()

    # -- loading (a thread of its own) ---------------------------------------------------

    def _ready(self) -> bool:
        """True once the model is loaded; starts loading it the first time it is asked."""
        if self.model is not None:
            return True
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, name="codec-load", daemon=True)
            self._loader.start()
        return False

    def _load(self) -> None:
        try:
            import scipy.spatial  # noqa: F401 - the renderer's mesh imports it on first use

            self.model = KeypointCodecModel.load()
        except Exception as exc:  # a bad model file: no codec, the camera goes on
            self.load_error = f"cannot load the codec model: {exc}"
            log.exception("codec: %s", self.load_error)

    def wait_ready(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) for the model: True when frames will be sent."""
        self._ready()
        if self._loader is not None:
            self._loader.join(timeout)
        return self.model is not None

    # -- configuration (the sink's own thread, between frames) -------------------------

    def configure(self, config: Any) -> None:
        source = getattr(config, "source", None)
        fps = self.fps if source is None else float(source.fps)
        settings = settings_from(CodecSinkSettings, getattr(config, "codec", None), self.settings)
        if settings == self.settings and fps == self.fps:
            return
        if settings.destination != self.settings.destination:
            self.address = None  # resolved again before the next frame
            self._resolve_log = Throttle()
        self.settings, self.fps = settings, fps
        self._drop_sender()  # the next frame starts a new stream with these settings
        if settings.enabled:
            self._ready()
        else:
            self.close()

    def wants_frames(self) -> bool:
        return self.settings.enabled

    # -- frames -----------------------------------------------------------------------

    def consume(self, frame: Frame) -> bool:
        if not self.settings.enabled or not self._ready():
            return False
        sock = self._socket()
        sender = self._sender_for(frame)
        self._read_requests(sock, sender)
        landmarks, iris = face_points(lead_face(frame))
        datagrams = sender.send(frame.image, landmarks, self._index_for(frame), iris)
        self.frames += 1
        address = self._destination()
        for datagram in datagrams:
            self._send(sock, address, datagram)
        return bool(datagrams)

    def _socket(self) -> socket.socket:
        if self.sock is None:
            self.sock = open_udp()
        return self.sock

    def _destination(self) -> tuple[str, int] | None:
        """The destination's address, looked up once per configuration (again every
        LOG_EVERY_S while the name does not resolve: DNS may come up after boot)."""
        if self.address is None and self._resolve_log.ready():
            try:
                host, port = parse_udp_uri(self.settings.destination)
                found = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
                self.address = str(found[0][4][0]), port
            except (OSError, ValueError) as exc:  # an unknown name (DNS not up yet?)
                log.warning("codec: cannot resolve %s: %s", self.settings.destination, exc)
        return self.address

    def _sender_for(self, frame: Frame) -> Sender:
        s = self.sender
        if s is not None and (s.width, s.height) == (frame.width, frame.height):
            return s
        assert self.model is not None  # consume waits for it
        self._drop_sender()
        settings = self.settings.codec()
        self.sender = s = Sender(frame.width, frame.height, self.fps, settings, self.model)
        self._start, self._index = frame.t_capture, -1
        aim = (
            f"hybrid at {settings.target_kbps:g} kbit/s" if settings.target_kbps
            else f"keypoints, floor {settings.floor:.2f}"
        )  # fmt: skip
        log.info("codec: stream %04x to %s, %dx%d, %s",
                 s.stream, self.settings.destination, frame.width, frame.height, aim)  # fmt: skip
        return s

    def _index_for(self, frame: Frame) -> int:
        """The frame's number from its capture time, so that the far end's timestamps stay
        true when the pipeline drops frames; always ahead of the previous one."""
        index = round((frame.t_capture - self._start) * self.fps)
        self._index = max(index, self._index + 1)
        return self._index

    def _read_requests(self, sock: socket.socket, sender: Sender) -> None:
        try:
            waiting = drain(sock)
        except OSError as exc:
            self._trouble("cannot read requests", exc)
            return
        for datagram, _peer in waiting:
            self.requests += 1
            sender.feedback(datagram)  # ignores what is not a REQUEST of this stream

    def _send(self, sock: socket.socket, address: tuple[str, int] | None, data: bytes) -> None:
        if address is None:
            self.send_errors += 1
            return
        try:
            sock.sendto(data, address)
        except OSError as exc:  # nobody listening, no route, buffer full: the camera goes on
            self._trouble(f"cannot send to {self.settings.destination}", exc)
            self.send_errors += 1
            return
        self.datagrams += 1
        self.bytes += len(data)
        with self._lock:
            self._sent.append((time.monotonic(), len(data)))
            self._forget_old()

    def _trouble(self, what: str, exc: OSError) -> None:
        if self._send_log.ready():
            log.warning("codec: %s: %s (logged at most every %.0f s)", what, exc, LOG_EVERY_S)

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._sent and now - self._sent[0][0] > RATE_WINDOW_S:
            self._sent.popleft()

    # -- status -----------------------------------------------------------------------

    def kbps(self) -> float:
        """What went out over the last RATE_WINDOW_S seconds, kbit/s."""
        with self._lock:
            self._forget_old()
            sent = sum(size for _, size in self._sent)
        return sent * 8 / RATE_WINDOW_S / 1000

    def stats(self) -> dict[str, Any]:
        """For the status page; the stream's own figures restart with each new stream."""
        sender = self.sender
        s = None if sender is None else sender.stats
        quality = s.quality[-1] if s is not None and s.quality else math.nan
        return {
            "enabled": self.settings.enabled,
            "error": self.load_error,
            "destination": self.settings.destination,
            "stream": None if sender is None else f"{sender.stream:04x}",
            "frames": self.frames,
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "kbps": round(self.kbps(), 2),
            "references": 0 if s is None else s.references,
            "residuals": 0 if s is None else sum(s.residuals.values()),
            "requests": self.requests,
            "send_errors": self.send_errors,
            "last_quality": round(quality, 4) if math.isfinite(quality) else None,
            "mode": self.settings.mode,
            "estimate_kbps": None if sender is None or sender.estimator is None
            else round(sender.estimator.kbps, 1),
            "rung": None if sender is None or sender.stream_sender is None
            else sender.stream_sender.rung.name,
        }  # fmt: skip

    def _drop_sender(self) -> None:
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()  # its encoders; its figures stay readable
        if self.sock is not None:
            self.sock.close()
            self.sock = None
