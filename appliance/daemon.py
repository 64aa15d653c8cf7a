"""``appliance run``: start the parts, tell systemd, ping its watchdog, stop on a signal."""

from __future__ import annotations

import errno
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from appliance.app import Appliance
from appliance.config import Config, ConfigError, ConfigManager, load_config
from appliance.platform import sdnotify

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # sysexits EX_CONFIG: systemd's RestartPreventExitStatus stops a restart loop
STATUS_EVERY_S = 5.0
# Errors that a restart cannot fix: the configured address or port is not ours to use.
PERMANENT_ERRNOS = {errno.EACCES, errno.EADDRNOTAVAIL}


class Signals:
    """SIGTERM/SIGINT stop the daemon; SIGHUP re-reads the config file."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        self.stop.set()
        self.wake.set()

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self.reload.set()
        self.wake.set()


def run(manager: ConfigManager, source: str | None = None) -> int:
    signals = Signals()
    signals.install()
    try:
        app = Appliance(manager, source=source)
    except OSError as exc:  # typically the web port: taken, privileged or not ours
        log.error("cannot start: %s", exc)
        return EXIT_CONFIG if exc.errno in PERMANENT_ERRNOS else EXIT_FAILURE
    code = EXIT_FAILURE
    try:
        app.start()
        if app.web is not None:
            log.info("live picture at %s", app.web.url)
        sdnotify.notify("READY=1\nSTATUS=starting")
        code = _supervise(app, manager, signals)
    except Exception:
        log.exception("fatal error in the main loop")
    finally:
        sdnotify.notify("STOPPING=1")
        stuck = app.stop()
        if stuck:
            log.error("did not stop in time: %s", ", ".join(stuck))
            code = EXIT_FAILURE
        else:
            log.info("stopped")
    return code


def _supervise(app: Appliance, manager: ConfigManager, signals: Signals) -> int:
    """Main thread: ping the watchdog unless a thread hangs; a dead part is fatal."""
    ping = sdnotify.watchdog_interval()
    tick = min(ping or 1.0, 1.0)
    next_status = 0.0
    while True:
        signals.wake.wait(tick)
        signals.wake.clear()
        if signals.reload.is_set():
            signals.reload.clear()
            _reload(manager)
        if signals.stop.is_set():
            return EXIT_OK
        fatal = app.fatal()
        if fatal:
            log.critical("fatal: %s", fatal)
            return EXIT_FAILURE
        hung = app.hung()
        if hung is None and ping is not None:
            sdnotify.notify("WATCHDOG=1")
        elif hung is not None:
            log.error("hung: %s; not pinging the watchdog", hung)
        now = time.monotonic()
        if now >= next_status:
            next_status = now + STATUS_EVERY_S
            sdnotify.notify(f"STATUS={_status_line(app)}")


def _status_line(app: Appliance) -> str:
    problem = app.problem()
    if problem:
        return problem
    current = app.selector.current
    source = current.uri if current is not None else "no source"
    return f"{app.pipeline.stats()['fps']:.1f} fps from {source}"


def _reload(manager: ConfigManager) -> None:
    log.info("SIGHUP: re-reading %s", manager.path or "(no config file)")
    try:
        manager.reload()
    except ConfigError as exc:
        log.error("%s\nkeeping the running configuration", exc)
    except OSError as exc:
        log.error("cannot re-read the configuration (%s); keeping the running one", exc)


def load_manager(path: Path | None) -> ConfigManager:
    """The config manager for ``--config``: a missing file starts from the defaults."""
    if path is None:
        return ConfigManager(Config())
    if not path.exists():
        log.info("%s does not exist yet: using defaults; changes will be saved there", path)
        return ConfigManager(Config(), path)
    return ConfigManager(load_config(path), path)
