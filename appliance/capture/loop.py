"""The capture thread: reads the selected source and feeds the pipeline."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from appliance.capture.base import SourceError
from appliance.capture.selector import SourceSelector
from appliance.frame import Frame

log = logging.getLogger(__name__)

# Short enough that an unplugged camera is noticed well within a second even when
# the driver does not report the loss; long enough not to spin.
READ_TIMEOUT_S = 0.25
NO_SOURCE_RETRY_S = 1.0
# A source that stays open but delivers nothing (a wedged USB camera) for this many
# frame periods, and at least SILENT_MIN_S, is treated as failed: fall back.
SILENT_FRAMES = 10
SILENT_MIN_S = 2.0


class CaptureLoop:
    def __init__(self, selector: SourceSelector, submit: Callable[[Frame], None]) -> None:
        self.selector = selector
        self._submit = submit
        self._stop = threading.Event()
        self._controls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.last_frame_at = 0.0
        self.heartbeat = time.monotonic()  # the loop went round: the thread is not hung
        self._source_since = 0.0
        self.failure: BaseException | None = None

    def start(self) -> None:
        self.heartbeat = time.monotonic()
        self._thread.start()

    def control(self, change: Callable[[], None]) -> None:
        """Run ``change`` on the capture thread before the next read."""
        self._controls.put(change)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                self._apply_controls()
                self._step()
        except BaseException as exc:
            self.failure = exc
            log.exception("capture thread died")
        finally:
            self.selector.close()

    def _apply_controls(self) -> None:
        while True:
            try:
                self._controls.get_nowait()()
            except queue.Empty:
                return

    def _step(self) -> None:
        before = self.selector.current
        try:
            source = self.selector.ensure()
        except SourceError as exc:
            log.error("%s", exc)
            self._stop.wait(NO_SOURCE_RETRY_S)
            return
        if self.selector.maybe_upgrade() or source is not before:
            self._source_since = time.monotonic()
            return
        try:
            frame = source.read(READ_TIMEOUT_S)
        except SourceError as exc:
            self.selector.fail(str(exc))
            return
        now = time.monotonic()
        if frame is not None:
            self.last_frame_at = now
            self._submit(frame)
            return
        silent_since = max(self.last_frame_at, self._source_since)
        if now - silent_since > max(SILENT_MIN_S, SILENT_FRAMES / max(source.fps, 0.1)):
            self.selector.fail(f"no frame for {now - silent_since:.1f} s")

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
