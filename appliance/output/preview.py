"""The live preview: the processed picture as JPEG, for MJPEG streaming over HTTP."""

from __future__ import annotations

import threading
import time
from typing import Any

import cv2

from appliance.frame import Frame
from appliance.pipeline.stage import Sink


class JpegHub:
    """Holds the newest JPEG; any number of HTTP clients wait on it.

    Each client sees the newest picture when it is ready for one: a slow client
    skips frames instead of slowing the pipeline or other clients.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self.clients = 0

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def latest(self) -> bytes | None:
        with self._cond:
            return self._jpeg

    def wait_newer(self, seen: int, timeout: float) -> tuple[int, bytes | None]:
        """Block until a JPEG newer than ``seen`` exists; (seq, None) on timeout/close."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seen or self._closed, timeout)
            if self._closed or self._seq <= seen:
                return seen, None
            return self._seq, self._jpeg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def attach(self, limit: int | None = None) -> bool:
        """Count one more viewer; False (not counted) when ``limit`` are already here."""
        with self._cond:
            if limit is not None and self.clients >= limit:
                return False
            self.clients += 1
            return True

    def detach(self) -> None:
        with self._cond:
            self.clients -= 1


class PreviewSink(Sink):
    """Encodes frames to JPEG while someone watches, at most ``max_fps`` a second.

    ``always`` keeps it encoding with no viewer (the benchmark, snapshots on demand).
    """

    name = "preview"

    def __init__(
        self,
        hub: JpegHub,
        quality: int = 80,
        max_fps: float = 15.0,
        always: bool = False,
        overlay: bool = False,
    ) -> None:
        self.hub = hub
        self.quality = quality
        self.overlay = overlay
        self.max_fps = max_fps
        self.always = always
        self._last = 0.0
        self._snapshot_wanted = threading.Event()

    def want_snapshot(self) -> None:
        """Ask for one encoded frame although nobody streams (``/snapshot.jpg``)."""
        self._snapshot_wanted.set()

    def wants_frames(self) -> bool:
        return self.always or self.hub.clients > 0 or self._snapshot_wanted.is_set()

    def consume(self, frame: Frame) -> bool:
        now = time.monotonic()
        if now - self._last < 1.0 / self.max_fps and not self._snapshot_wanted.is_set():
            return False
        image = frame.image
        if self.overlay and frame.meta.get("faces"):
            from appliance.vision.overlay import draw_faces

            image = draw_faces(image, frame.meta["faces"])  # on a copy: sinks share frames
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        self._last = now
        self._snapshot_wanted.clear()
        self.hub.publish(jpeg.tobytes())
        return True

    def configure(self, config: Any) -> None:
        self.quality = config.web.jpeg_quality
        self.overlay = config.web.overlay
        if not self.always:
            self.max_fps = config.web.preview_fps

    def close(self) -> None:
        self.hub.close()
