"""The daemon's parts, started in order and stopped in reverse (an explicit list, no magic)."""

from __future__ import annotations

import logging
import time
from typing import Any

from appliance import __version__
from appliance.capture.base import Source
from appliance.capture.discovery import candidates_for
from appliance.capture.hotplug import HotplugMonitor
from appliance.capture.loop import CaptureLoop
from appliance.capture.selector import SourceSelector
from appliance.capture.uri import open_source
from appliance.config import Config, ConfigManager
from appliance.logs import set_level
from appliance.output.preview import JpegHub, PreviewSink
from appliance.pipeline import Passthrough, Pipeline

log = logging.getLogger(__name__)

STALL_S = 5.0  # no frame captured for this long: unhealthy, the watchdog stops pinging


class Appliance:
    """Capture -> pipeline -> sinks, plus the web server and hot-plug monitor.

    ``source`` overrides the configured source URI for this run (``--source``).
    """

    def __init__(self, config: ConfigManager, source: str | None = None, web: bool = True) -> None:
        self.config = config
        self._source_override = source
        cfg = config.config
        self.hub = JpegHub()
        self.preview = PreviewSink(self.hub, cfg.web.jpeg_quality, cfg.web.preview_fps)
        self.pipeline = Pipeline([Passthrough()], [self.preview], depth=cfg.pipeline.queue_depth)
        self.selector = SourceSelector(self._candidates(cfg), self._open_source)
        self.capture = CaptureLoop(self.selector, self.pipeline.submit)
        self.hotplug = HotplugMonitor(self.selector.device_added, self.selector.device_removed)
        self.web = None
        if web and cfg.web.enabled:
            from appliance.web import WebServer, create_app

            self.web = WebServer(create_app(self), cfg.web.bind, cfg.web.port)
        self.started_at = 0.0
        config.subscribe(self._apply_config)

    # -- wiring ---------------------------------------------------------------------

    def _candidates(self, cfg: Config) -> Any:
        return candidates_for(self._source_override or cfg.source.uri, cfg.source.fallback)

    def _open_source(self, uri: str) -> Source:
        s = self.config.config.source
        return open_source(uri, s.width, s.height, s.fps)

    def _apply_config(self, old: Config, new: Config) -> None:
        self.pipeline.configure(new)
        if new.source != old.source:
            # A configured source replaces a --source override given at start.
            self._source_override = None
            self.capture.control(lambda: self.selector.reset(self._candidates(new)))
        if new.logging != old.logging:
            set_level(new.logging.level)

    def request_snapshot(self) -> None:
        self.preview.want_snapshot()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.pipeline.start()
        self.capture.start()
        if not self.hotplug.start():
            log.info("hot-plug: %s; re-checking cameras every few seconds", self.hotplug.reason)
        if self.web is not None:
            self.web.start()

    def stop(self, timeout: float = 1.5) -> list[str]:
        """Stop everything in reverse order; returns the parts that did not stop in time."""
        deadline = time.monotonic() + timeout
        hung = []
        if self.web is not None and not self.web.stop(max(0.1, deadline - time.monotonic())):
            hung.append("web")
        self.hotplug.stop()
        if not self.capture.stop(max(0.1, deadline - time.monotonic())):
            hung.append("capture")
        hung += self.pipeline.stop(max(0.1, deadline - time.monotonic()))
        return hung

    # -- health and status ----------------------------------------------------------

    def problem(self) -> str | None:
        """Why the daemon is not working, or None. Drives the systemd watchdog."""
        if self.capture.failure is not None or not self.capture.alive:
            return f"capture thread stopped: {self.capture.failure!r}"
        failure = self.pipeline.failure()
        if failure:
            return failure
        last = self.capture.last_frame_at or self.started_at
        if time.monotonic() - last > STALL_S:
            return f"no frame for {time.monotonic() - last:.0f} s ({self.selector.last_error})"
        return None

    def status(self) -> dict[str, Any]:
        current = self.selector.current
        problem = self.problem()
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "healthy": problem is None,
            "problem": problem,
            "capture": {
                "source": current.uri if current else None,
                "size": list(current.size) if current else None,
                "switches": self.selector.switches,
                "last_error": self.selector.last_error,
                "hotplug": self.hotplug.mode if not self.hotplug.reason else "polling",
            },
            "pipeline": self.pipeline.stats(),
            "restart_required": sorted(self.config.pending_restart),
        }
