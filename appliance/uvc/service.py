"""The webcam in the daemon (``uvc.enabled``): finds the gadget that ``appliance gadget
up`` built, runs its UVC function on a thread, and watches the UDC's state.

The gadget may not be there yet (the gadget unit runs first, but a UDC driver can load
late) or may go away (``gadget down``, a UDC reset): the service keeps looking every
few seconds and reports why it is not streaming, never stopping the rest of the camera.
UDC connect/disconnect is not a udev event: the sysfs ``state`` attribute is read each
turn (``configured`` once a host has set the configuration).
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path
from typing import Any

from appliance.frame import Frame
from appliance.hw.profile import BoardProfile
from appliance.pipeline.stage import Sink
from appliance.uvc.gadget import Gadget
from appliance.uvc.modes import modes_for
from appliance.uvc.protocol import Negotiation, RequestHandler, default_controls
from appliance.uvc.stream import FrameSlot, UvcFunction, V4L2GadgetNode, find_gadget_node

log = logging.getLogger(__name__)

RETRY_S = 2.0


class UvcSink(Sink):
    """The pipeline's output to the host: the newest processed picture."""

    name = "uvc"

    def __init__(self, service: UvcService) -> None:
        self.service = service

    def wants_frames(self) -> bool:
        return self.service.streaming

    def consume(self, frame: Frame) -> bool:
        self.service.frames.put(frame.image)
        return True


class UvcService:
    def __init__(
        self,
        profile: BoardProfile,
        gadget: Gadget | None = None,
        on_control: Any = None,
        sys_root: Path = Path("/sys"),
    ) -> None:
        self.profile = profile
        self.gadget = gadget or Gadget()
        self.sys_root = sys_root
        self.frames = FrameSlot()
        self.on_control = on_control  # (name, value): e.g. zoom -> auto-framing
        self.function: UvcFunction | None = None
        self.problem: str | None = "not started"
        self._stop = threading.Event()
        self._wake = threading.Event()  # a UDC or video node came or went
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self.watch = "polling"

    @property
    def streaming(self) -> bool:
        return self.function is not None and self.function.streaming

    def start(self) -> None:
        self._watch_udev()
        self._thread = threading.Thread(target=self._run, name="uvc", daemon=True)
        self._thread.start()

    def _watch_udev(self) -> None:
        """Wake the search at once when a UDC or the gadget's video node appears (a late
        UDC driver, ``gadget up`` after the daemon); polling still covers both."""
        try:
            import pyudev

            context = pyudev.Context()
            source = "udev" if Path("/run/udev/control").exists() else "kernel"
            monitor = pyudev.Monitor.from_netlink(context, source=source)
            monitor.filter_by(subsystem="udc")
            monitor.filter_by(subsystem="video4linux")
            self._observer = pyudev.MonitorObserver(
                monitor, callback=lambda _device: self._wake.set(), name="uvc-udev"
            )
            self._observer.daemon = True
            self._observer.start()
            self.watch = f"{source} events"
        except Exception as exc:  # no netlink, no pyudev: polling alone
            self.watch = f"polling ({exc})"

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.send_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            node = self._open()
            if node is None:
                self._wake.wait(RETRY_S)
                self._wake.clear()
                continue
            try:
                assert self.function is not None
                self.function.run(self._stop)
            except OSError as exc:  # the node went away under us
                self.problem = f"gadget node lost: {exc}"
                log.warning("uvc: %s", self.problem)
            finally:
                node.close()
                self.function = None

    def _open(self) -> V4L2GadgetNode | None:
        if self.profile.uvc is None:
            self.problem = f"board {self.profile.name} has no uvc section"
            return None
        if not self.gadget.udc():
            self.problem = "no gadget bound (run: appliance gadget up)"
            return None
        path = find_gadget_node(str(self.sys_root))
        if path is None:
            self.problem = "the gadget has no video node"
            return None
        try:
            node = V4L2GadgetNode(path)
        except OSError as exc:
            self.problem = f"cannot open {path}: {exc}"
            return None
        control_if, streaming_if = self.gadget.interfaces()
        spec = self.profile.uvc
        negotiation = Negotiation(modes_for(spec), spec.bytes_per_interval(spec.usb_speed))
        controls = default_controls()
        if self.on_control is not None:
            for control in controls.values():
                control.on_change = partial(self.on_control, control.name)
        handler = RequestHandler(negotiation, controls, control_if, streaming_if)
        self.function = UvcFunction(node, handler, self.frames)
        self.problem = None
        log.info("UVC function on %s (interfaces %d/%d)", path, control_if, streaming_if)
        return node

    def status(self) -> dict[str, Any]:
        function = self.function
        return {
            "udc": self.gadget.udc() or None,
            "udc_state": self.gadget.state(),
            "problem": self.problem,
            "watch": self.watch,
            **(function.stats() if function is not None else {"streaming": False}),
        }
