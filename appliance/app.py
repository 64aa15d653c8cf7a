"""The daemon's parts, started in order and stopped in reverse (an explicit list, no magic)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.audio.pipeline import AudioPipeline, AudioSettings
from appliance.background.stage import check_background
from appliance.capture.base import Source
from appliance.capture.discovery import candidates_for
from appliance.capture.hotplug import HotplugMonitor
from appliance.capture.loop import CaptureLoop
from appliance.capture.selector import Candidates, SourceSelector
from appliance.capture.uri import open_source
from appliance.config import Config, ConfigError, ConfigManager
from appliance.frame import Frame
from appliance.logs import set_level
from appliance.output.codec import CodecSink, CodecSinkSettings
from appliance.output.preview import JpegHub, PreviewSink
from appliance.pipeline import Passthrough, Pipeline, Stage
from appliance.pipeline.health import DropWatch
from appliance.pipeline.pipeline import ModelSwap
from appliance.pipeline.stage import Sink, settings_from
from appliance.runtime.bundle import factory_bundle_dir
from appliance.updates import ModelUpdates
from appliance.uvc.service import UvcService, UvcSink
from ota.layout import slot_versions

log = logging.getLogger(__name__)

STALL_S = 5.0  # no frame captured for this long (or 3 frame periods): reported as a problem
# A thread stuck this long is hung: the watchdog stops pinging and systemd restarts us.
# Generous, because opening a camera or loading a model legitimately takes seconds.
HANG_S = 10.0


def check_web_address(old: Config, new: Config) -> None:
    """Refuse a web address this machine cannot listen on, before it is saved: found out
    only at the next boot, it would leave the camera without its page."""
    address = (new.web.bind, new.web.port)
    if not new.web.enabled or address == (old.web.bind, old.web.port):
        return
    family = socket.AF_INET6 if ":" in new.web.bind else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = f"web: cannot listen on {address[0]}:{address[1]}: {exc.strerror}"
        raise ConfigError([reason]) from None


def build_stages(cfg: Config, bundles_dir: Path | None = None) -> tuple[list[Stage], str]:
    """The frame path's stages, and why the neural ones are missing (or "").

    A model that cannot load is reported and its stages left out, so the camera still
    streams: the picture is never held hostage by a bad model bundle.
    """
    from appliance.align.stage import AlignStage
    from appliance.background.stage import BackgroundStage
    from appliance.enhance.stage import EnhanceStage
    from appliance.runtime.base import BackendUnavailable, ModelError
    from appliance.runtime.bundle import BundleError
    from appliance.vision.stage import FaceTrackingStage

    model_errors = (BackendUnavailable, BundleError, ModelError, OSError)
    try:
        vision = FaceTrackingStage.from_config(cfg, bundles_dir)
    except model_errors as exc:
        log.error("vision disabled: %s", exc)
        return [Passthrough()], str(exc)
    problems = []
    enhance = None
    try:
        enhance = EnhanceStage.from_config(cfg, vision.backend, bundles_dir)
    except model_errors as exc:  # the picture keeps its size; everything else works
        log.error("super-resolution disabled: %s", exc)
        problems.append(f"super-resolution: {exc}")
    upscale = enhance.upscale if enhance is not None else None
    stages: list[Stage] = [vision, AlignStage.from_config(cfg, upscale)]
    try:
        stages.append(BackgroundStage.from_config(cfg, bundles_dir, vision.backend))
    except model_errors as exc:  # framing still works without the segmentation model
        log.error("background disabled: %s", exc)
        problems.append(f"background: {exc}")
    if enhance is not None:
        stages.append(enhance)  # last: background and retouching work on fewer pixels
    return stages, "; ".join(problems)


class Appliance:
    """Capture -> pipeline -> sinks, plus the web server and hot-plug monitor.

    ``source`` overrides the configured source URI for this run (``--source``).
    """

    def __init__(self, config: ConfigManager, source: str | None = None, web: bool = True) -> None:
        self.config = config
        self._source_override = source
        cfg = config.config
        self.hub = JpegHub()
        self.preview = PreviewSink(
            self.hub, cfg.web.jpeg_quality, cfg.web.preview_fps, overlay=cfg.web.overlay
        )
        self.codec = CodecSink(settings_from(CodecSinkSettings, cfg.codec), cfg.source.fps)
        self.updates = self._updates(cfg)
        factory = factory_bundle_dir()
        self.models_dir = self.updates.prepare(factory) if self.updates else factory
        self.model_versions = slot_versions(self.models_dir)  # read once, not per status
        stages, self.vision_error = build_stages(cfg, self.models_dir)
        from appliance.vision.stage import FaceTrackingStage

        # The one backend every network runs on; its choices (precision per model, and
        # any precision refused on this machine) are part of the status.
        self.inference = next((s.backend for s in stages if isinstance(s, FaceTrackingStage)), None)
        self.uvc = self._uvc(cfg)
        sinks: list[Sink] = [self.preview, self.codec]
        if self.uvc is not None:
            sinks.append(UvcSink(self.uvc))
        # A webcam idles until a host streams (or someone watches the page, or a call).
        idle = self.uvc is not None
        self.pipeline = Pipeline(stages, sinks, cfg.pipeline.queue_depth, idle_unwatched=idle)
        self.drops = DropWatch()
        self.selector = SourceSelector(self._candidates(cfg), self._open_source)
        # The picture as captured, for the page's before/after toggle: its own sink on its
        # own thread, encoding only while someone watches it.
        self.before_hub = JpegHub()
        self.before = PreviewSink(self.before_hub, cfg.web.jpeg_quality, cfg.web.preview_fps)
        self.before_path = Pipeline([], [self.before])
        self.capture = CaptureLoop(self.selector, self._captured)
        self.hotplug = HotplugMonitor(self.selector.device_added, self.selector.device_removed)
        # The microphone: its own thread, idle while disabled; a dead one never stops video.
        self.audio = AudioPipeline(settings_from(AudioSettings, cfg.audio))
        self.audio_hotplug = HotplugMonitor(
            self.audio.device_changed, self.audio.device_changed, subsystem="sound"
        )
        self.web = None
        self.web_app: Any = None
        if web and cfg.web.enabled:
            from appliance.web import WebServer, create_app

            loopback = ipaddress.ip_address(cfg.web.bind).is_loopback
            self.web_app = create_app(self, loopback)
            self.web = WebServer(self.web_app, cfg.web.bind, cfg.web.port)
        self.fleet = self._fleet(cfg)
        if self.fleet is not None and self.web is not None:
            self.fleet.handle("web-password", self._provision_web_password)
        self.started_at = 0.0
        self._face_height = cfg.align.face_height  # what the host's zoom 100 means
        self.restart_reason: str | None = None
        config.add_check(check_web_address)
        config.add_check(check_background)
        config.subscribe(self._apply_config)

    # -- wiring ---------------------------------------------------------------------

    def _provision_web_password(self, document: Any) -> dict[str, Any]:
        """``cmd/web-password`` ``{"scrypt": record}``: the operator sets the page's
        password (hashed on their side: the password itself never travels); every
        session logged in with the old one ends."""
        from appliance.web.auth import checked_record

        if not isinstance(document, dict):
            raise ValueError('expected {"scrypt": {...}}')
        record = checked_record(document.get("scrypt"))
        self.web_app.config["AUTH"].set_record(record)
        self.web_app.config["SESSIONS"].drop_all()
        return {"ok": True}

    def _uvc(self, cfg: Config) -> UvcService | None:
        """The webcam output, when enabled: the gadget is built by ``appliance gadget up``
        (its own unit, as root); the daemon only runs the UVC function on its node."""
        if not cfg.uvc.enabled:
            return None
        from appliance.hw.profile import detect_board

        return UvcService(detect_board(), on_control=self._host_control)

    def _host_control(self, name: str, value: int) -> None:
        """The host's zoom tightens the auto-framing (100 = the configured framing)."""
        if name != "zoom_absolute":
            return
        height = min(0.8, self._face_height * value / 100)
        try:
            self.config.update({"align": {"face_height": round(height, 3)}}, origin="uvc")
        except (ConfigError, OSError) as exc:
            log.warning("zoom from the host not applied: %s", exc)

    def _updates(self, cfg: Config) -> ModelUpdates | None:
        return ModelUpdates.from_config(self, cfg.ota) if cfg.ota.enabled else None

    def _fleet(self, cfg: Config) -> Any:
        """The MQTT link, when configured; its shadow version is kept beside the config
        file (a daemon without a file keeps it in memory)."""
        if not cfg.fleet.enabled:
            return None
        from appliance.fleet.client import FleetClient, FleetSettings
        from appliance.fleet.shadow import state_path

        state = state_path(self.config.path)
        updater = self.updates.install if self.updates is not None else None
        client = FleetClient(
            self.config,
            FleetSettings.from_config(cfg.fleet, cfg.device.name),
            self.status,
            state,
            updater,
        )
        if self.updates is not None:
            self.updates.on_status = client.publish_ota
        return client

    def _candidates(self, cfg: Config) -> Candidates:
        return candidates_for(self._source_override or cfg.source.uri, cfg.source.fallback)

    def _open_source(self, uri: str) -> Source:
        s = self.config.config.source
        return open_source(uri, s.width, s.height, s.fps)

    def _apply_config(self, old: Config, new: Config) -> None:
        self.pipeline.configure(new)
        self.before_path.configure(new)
        if new.source != old.source:
            if (new.source.uri, new.source.fallback) != (old.source.uri, old.source.fallback):
                self._source_override = None  # a newly chosen source replaces --source
            self.capture.control(lambda: self.selector.reset(self._candidates(new)))
        if new.audio != old.audio:
            self.audio.configure(settings_from(AudioSettings, new.audio))
        if new.logging != old.logging:
            set_level(new.logging.level)

    def reload_models(self, bundles_dir: Path) -> ModelSwap:
        """The pipeline's stages take the networks of ``bundles_dir`` between frames
        (:meth:`Pipeline.reload_models`: all or nothing, loaded on the caller's thread);
        from now on status reports that directory's versions."""
        swap = self.pipeline.reload_models(bundles_dir)
        self.models_dir = Path(bundles_dir)
        self.model_versions = slot_versions(self.models_dir)
        return swap

    def _captured(self, frame: Frame) -> None:
        self.pipeline.submit(frame)
        if self.before.wants_frames():
            # Its own Frame: the stages replace ``image`` and fill ``meta`` on theirs.
            self.before_path.submit(replace(frame, meta={}))

    def request_snapshot(self) -> None:
        self.preview.want_snapshot()
        self.before.want_snapshot()

    def request_restart(self, reason: str) -> None:
        """Exit with a failure status so systemd (Restart=on-failure) starts us afresh;
        the supervisor notices within a second (see ``fatal``)."""
        log.warning("restart requested: %s", reason)
        self.restart_reason = reason

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.pipeline.start()
        self.before_path.start()
        self.capture.start()
        self.audio.start()
        self.audio_hotplug.start()  # without udev, the audio path's back-off still retries
        if not self.hotplug.start():
            log.info("hot-plug: %s; re-checking cameras every few seconds", self.hotplug.reason)
        if self.web is not None:
            self.web.start()
        if self.fleet is not None:
            self.fleet.start()
        if self.updates is not None:
            self.updates.start()  # after the pipeline: a resumed job's gate watches it
        if self.uvc is not None:
            self.uvc.start()

    def stop(self, timeout: float = 1.5) -> list[str]:
        """Stop everything in reverse order; returns the parts that did not stop in time."""
        deadline = time.monotonic() + timeout
        hung = []
        if self.updates is not None:
            self.updates.stop()  # an unfinished gate leaves its job for the next start
        if self.uvc is not None and not self.uvc.stop(max(0.1, deadline - time.monotonic())):
            hung.append("uvc")
        if self.fleet is not None:
            self.fleet.stop(max(0.1, deadline - time.monotonic()))  # says offline first
        self.hub.close()  # ends MJPEG streams now, so their threads do not outlive us
        self.before_hub.close()
        if self.web is not None and not self.web.stop(max(0.1, deadline - time.monotonic())):
            hung.append("web")
        self.hotplug.stop()
        self.audio_hotplug.stop()
        if not self.capture.stop(max(0.1, deadline - time.monotonic())):
            hung.append("capture")
        if not self.audio.stop(max(0.1, deadline - time.monotonic())):
            hung.append("audio")
        hung += self.pipeline.stop(max(0.1, deadline - time.monotonic()))
        hung += self.before_path.stop(max(0.1, deadline - time.monotonic()))
        return hung

    # -- health and status ----------------------------------------------------------

    def fatal(self) -> str | None:
        """A part died: the daemon cannot go on and exits for systemd to restart it."""
        if self.restart_reason is not None:
            return f"restart requested: {self.restart_reason}"
        if self.capture.failure is not None or (self.started_at and not self.capture.alive):
            return f"capture thread stopped: {self.capture.failure!r}"
        return self.pipeline.failure()

    def hung(self) -> str | None:
        """A thread stuck mid-work: the watchdog stops pinging so systemd restarts us."""
        if time.monotonic() - self.capture.heartbeat > HANG_S:
            return f"capture thread stuck for {time.monotonic() - self.capture.heartbeat:.0f} s"
        return self.pipeline.stuck(HANG_S)

    def problem(self) -> str | None:
        """Why the daemon is not doing its job, or None: :meth:`problems`, in one line."""
        return "; ".join(self.problems()) or None

    def problems(self, stages: dict[str, Any] | None = None) -> list[str]:
        """Everything that keeps the daemon from doing its job (shown in status,
        telemetry and systemd's STATUS=; not fatal). Empty: healthy.

        No camera at all is a problem to report, not a reason to restart: the capture
        thread keeps looking and a plugged camera is picked up. ``stages``: the
        pipeline's per-stage stats, when the caller has them already.
        """
        trouble = self.fatal() or self.hung()
        if trouble:
            return [trouble]
        found = []
        current = self.selector.current
        fps = current.fps if current is not None else 1.0
        last = self.capture.last_frame_at or self.started_at
        idle = time.monotonic() - last
        if idle > max(STALL_S, 3.0 / max(fps, 0.01)):
            why = f": {self.selector.last_error}" if self.selector.last_error else ""
            found.append(f"no frame for {idle:.0f} s{why}")
        fallen = self.selector.fallen_back()
        if fallen:
            found.append(fallen)
        found += self.drops.problems(stages or self.pipeline.stats()["stages"])
        audio = self.audio.problem()
        if audio:
            found.append(f"audio: {audio}")
        link = self.fleet.health()["problem"] if self.fleet is not None else None
        return [*found, link] if link else found

    def frame_rate(self) -> float:
        """The frame rate the source delivers (what the pipeline should keep up with)."""
        current = self.selector.current
        return float(current.fps) if current is not None else self.config.config.source.fps

    def status(self) -> dict[str, Any]:
        current = self.selector.current
        pipeline = self.pipeline.stats()
        problems = self.problems(pipeline["stages"])
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "healthy": not problems,
            "problem": "; ".join(problems) or None,
            "problems": problems,
            "capture": {
                "source": current.uri if current else None,
                "size": list(current.size) if current else None,
                "switches": self.selector.switches,
                "last_error": self.selector.last_error,
                "hotplug": self.hotplug.mode if not self.hotplug.reason else "polling",
            },
            "pipeline": pipeline,
            "vision": {"error": self.vision_error or None},
            "codec": self.codec.stats(),
            "audio": self.audio.status(),
            "uvc": self.uvc.status() if self.uvc is not None else {"enabled": False},
            "models": {
                "dir": str(self.models_dir),
                "versions": self.model_versions,
                "updates": self.updates.status() if self.updates is not None else None,
                "backend": self.inference.name if self.inference is not None else None,
                "precision": dict(self.inference.choices) if self.inference is not None else {},
            },
            "fleet": self.fleet.health() if self.fleet is not None else {"enabled": False},
            "restart_required": sorted(self.config.pending_restart),
        }
