"""The keypoint codec as a sink: the processed picture's lead face, sent over UDP.

The sink owns one non-blocking UDP socket: it sends the sender's datagrams to the
configured destination and reads, before each frame, the REQUESTs the far end sends
back to that socket. A missing or unreachable receiver never stops the camera: send
errors are counted (and logged once in a while), the frames keep coming. Settings apply
between frames; a new destination, new settings or a new picture size start a new
stream (new stream id, a fresh reference), which a receiver follows by itself.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.codec.session import CodecSettings, Sender
from appliance.codec.transport import drain, open_udp, parse_udp_uri
from appliance.frame import Frame
from appliance.pipeline.stage import Sink, settings_from

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0  # at most one log line a while for the same send error
RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class CodecSinkSettings:
    enabled: bool = False
    destination: str = "udp://127.0.0.1:5004"
    floor: float = 0.80
    reference_quality: int = 40
    intra_period: int = 15


def _lead_face(frame: Frame) -> Any | None:
    faces = frame.meta.get("faces") or []
    if not faces:
        return None
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


class CodecSink(Sink):
    name = "codec"

    def __init__(self, settings: CodecSinkSettings | None = None, fps: float = 30.0) -> None:
        self.settings = settings or CodecSinkSettings()
        self.fps = fps  # the capture rate: the packets' timestamps
        self.sender: Sender | None = None
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        self.send_errors = 0
        self.datagrams = 0
        self._index = 0
        self._last_error_log = -LOG_EVERY_S
        self._sent: deque[tuple[float, int]] = deque()  # (time, bytes) for the rate

    # -- configuration (the sink's own thread, between frames) -------------------------

    def configure(self, config: Any) -> None:
        source = getattr(config, "source", None)
        if source is not None:
            self.fps = float(source.fps)
        settings = settings_from(CodecSinkSettings, getattr(config, "codec", config))
        if settings != self.settings:
            self.settings = settings
            self._restart()

    def wants_frames(self) -> bool:
        return self.settings.enabled

    def _restart(self) -> None:
        """Forget the stream: the next frame starts a new one with these settings."""
        self.sender = None
        if self.sock is not None and not self.settings.enabled:
            self.close()

    # -- frames -----------------------------------------------------------------------

    def consume(self, frame: Frame) -> bool:
        if not self.settings.enabled:
            return False
        if self.sock is None:
            self.address = parse_udp_uri(self.settings.destination)
            self.sock = open_udp()
        sender = self._sender_for(frame)
        for datagram, _address in drain(self.sock):
            sender.feedback(datagram)
        face = _lead_face(frame)
        landmarks = None if face is None else np.asarray(face.landmarks, np.float64)
        iris = None
        if face is not None and getattr(face, "iris", None) is not None:
            iris = np.asarray(face.iris, np.float64)[:, 0, :2]
        datagrams = sender.send(frame.image, landmarks, self._index, iris)
        self._index += 1
        for datagram in datagrams:
            self._send(datagram)
        return bool(datagrams)

    def _sender_for(self, frame: Frame) -> Sender:
        s = self.sender
        if s is None or (s.width, s.height) != (frame.width, frame.height):
            settings = CodecSettings(
                floor=self.settings.floor,
                reference_quality=self.settings.reference_quality,
                intra_period=self.settings.intra_period,
            )
            self.sender = s = Sender(frame.width, frame.height, self.fps, settings)
            self._index = 0
            log.info(
                "codec: stream %04x to %s, %dx%d, floor %.2f",
                s.stream,
                self.settings.destination,
                frame.width,
                frame.height,
                settings.floor,
            )
        return s

    def _send(self, datagram: bytes) -> None:
        assert self.sock is not None and self.address is not None
        try:
            self.sock.sendto(datagram, self.address)
        except OSError as exc:  # nobody listening, no route: the camera goes on
            self.send_errors += 1
            now = time.monotonic()
            if now - self._last_error_log >= LOG_EVERY_S:
                self._last_error_log = now
                log.warning("codec: cannot send to %s: %s", self.settings.destination, exc)
            return
        self.datagrams += 1
        now = time.monotonic()
        self._sent.append((now, len(datagram)))
        while self._sent and now - self._sent[0][0] > RATE_WINDOW_S:
            self._sent.popleft()

    # -- status -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        s = self.sender.stats if self.sender is not None else None
        window = sum(size for _, size in self._sent)
        return {
            "enabled": self.settings.enabled,
            "destination": self.settings.destination,
            "stream": None if self.sender is None else f"{self.sender.stream:04x}",
            "datagrams": self.datagrams,
            "kbps": window * 8 / RATE_WINDOW_S / 1000,
            "references": 0 if s is None else s.references,
            "residuals": 0 if s is None else sum(s.residuals.values()),
            "send_errors": self.send_errors,
            "last_quality": None if s is None or not s.quality else s.quality[-1],
        }

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
