"""USB hot-plug through udev (pyudev): cameras (``video4linux``) feeding the source
selector, microphones (``sound``) waking the audio path."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class HotplugMonitor:
    """Reports device nodes of one udev subsystem (``video4linux`` by default) appearing
    and disappearing.

    Where udev is not available (containers, CI) ``start`` returns False and says why;
    the selector's periodic re-check and read errors still catch plug and unplug,
    only more slowly.
    """

    def __init__(
        self,
        on_added: Callable[[str], None],
        on_removed: Callable[[str], None],
        subsystem: str = "video4linux",
    ) -> None:
        self.subsystem = subsystem
        self._on_added = on_added
        self._on_removed = on_removed
        self._observer: Any = None
        self.reason = ""
        self.mode = "off"

    def handle(self, action: str, devnode: str | None) -> None:
        """Dispatch one udev event (also the seam the tests drive)."""
        if not devnode:
            return
        log.info("udev: %s %s", action, devnode)
        if action == "add":
            self._on_added(devnode)
        elif action == "remove":
            self._on_removed(devnode)

    def start(self) -> bool:
        try:
            import pyudev
        except ImportError as exc:
            self.reason = f"pyudev not installed ({exc})"
            return False
        try:
            context = pyudev.Context()
            # Without udevd (minimal images, the test VM) only the kernel's own
            # uevents arrive; devtmpfs still creates the /dev/videoN nodes.
            source = "udev" if os.path.exists("/run/udev/control") else "kernel"
            monitor = pyudev.Monitor.from_netlink(context, source=source)
            monitor.filter_by(subsystem=self.subsystem)
            self._observer = pyudev.MonitorObserver(
                monitor,
                callback=lambda device: self.handle(device.action or "", device.device_node),
                name=f"hotplug-{self.subsystem}",
            )
            self._observer.daemon = True
            self._observer.start()
            self.mode = f"{source} events"
        except Exception as exc:  # no netlink socket, no udev: degrade, never crash
            self.reason = f"udev monitor unavailable ({exc})"
            return False
        return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.send_stop()
            self._observer.join(1.0)
            self._observer = None
