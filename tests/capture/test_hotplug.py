"""The fall-back logic: a USB camera unplugged mid-stream, then plugged back."""

import time
from collections.abc import Iterator

import pytest

from appliance.capture.base import Source
from appliance.capture.hotplug import HotplugMonitor
from appliance.capture.loop import CaptureLoop
from appliance.capture.selector import SourceSelector
from appliance.frame import Frame
from tests.conftest import FakeCamera, FakeUsbBus, wait_until

CAM = "/dev/video4"
FALLBACK = "/dev/fallback"  # stands in for synthetic://, always present


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[float, str]] = []

    def __call__(self, frame: Frame) -> None:
        self.frames.append((time.monotonic(), frame.source))

    def source_at_end(self) -> str:
        return self.frames[-1][1] if self.frames else ""

    def first_from(self, uri: str, after: float) -> float | None:
        return next((t for t, s in self.frames if s == uri and t > after), None)


Rig = tuple[FakeUsbBus, SourceSelector, HotplugMonitor, Recorder]


@pytest.fixture
def rig(usb_bus: FakeUsbBus) -> Iterator[Rig]:
    usb_bus.plug(CAM)
    usb_bus.plug(FALLBACK)

    def factory(uri: str) -> Source:
        path = uri.removeprefix("v4l2://")
        return FakeCamera(usb_bus, path, level=200 if path == CAM else 50)

    selector = SourceSelector(lambda: [f"v4l2://{CAM}", f"v4l2://{FALLBACK}"], factory, retry_s=5.0)
    monitor = HotplugMonitor(selector.device_added, selector.device_removed)
    recorder = Recorder()
    loop = CaptureLoop(selector, recorder)
    loop.start()
    yield usb_bus, selector, monitor, recorder
    assert loop.stop(1.0)
    assert loop.failure is None


def test_unplug_falls_back_within_a_second_and_replug_returns(rig: Rig) -> None:
    bus, selector, monitor, recorder = rig
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}")

    unplugged = time.monotonic()
    bus.unplug(CAM)
    monitor.handle("remove", CAM)
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{FALLBACK}", timeout=2.0)
    switched = recorder.first_from(f"v4l2://{FALLBACK}", unplugged)
    assert switched is not None and switched - unplugged < 1.0

    replugged = time.monotonic()
    bus.plug(CAM)
    monitor.handle("add", CAM)
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}", timeout=2.0)
    back = recorder.first_from(f"v4l2://{CAM}", replugged)
    assert back is not None and back - replugged < 1.0
    assert selector.switches == 3


def test_unplug_without_udev_is_caught_by_the_read_error(rig: Rig) -> None:
    bus, _, _, recorder = rig
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}")
    unplugged = time.monotonic()
    bus.unplug(CAM)  # no udev event at all
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{FALLBACK}", timeout=2.0)
    switched = recorder.first_from(f"v4l2://{FALLBACK}", unplugged)
    assert switched is not None and switched - unplugged < 1.0


def test_replug_without_udev_is_found_by_the_periodic_recheck(usb_bus: FakeUsbBus) -> None:
    usb_bus.plug(FALLBACK)

    def factory(uri: str) -> Source:
        return FakeCamera(usb_bus, uri.removeprefix("v4l2://"), level=1)

    selector = SourceSelector(lambda: [f"v4l2://{CAM}", f"v4l2://{FALLBACK}"], factory, retry_s=0.3)
    recorder = Recorder()
    loop = CaptureLoop(selector, recorder)
    loop.start()
    try:
        assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{FALLBACK}")
        usb_bus.plug(CAM)
        assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}", timeout=2.0)
    finally:
        assert loop.stop(1.0)


def test_events_for_other_devices_do_not_disturb_the_stream(rig: Rig) -> None:
    _, selector, monitor, recorder = rig
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}")
    monitor.handle("remove", "/dev/video9")
    monitor.handle("add", "/dev/video9")
    monitor.handle("change", CAM)
    monitor.handle("add", None)
    time.sleep(0.3)
    assert recorder.source_at_end() == f"v4l2://{CAM}"
    assert selector.switches == 1


def test_no_source_at_all_keeps_retrying_without_crashing(usb_bus: FakeUsbBus) -> None:
    def factory(uri: str) -> Source:
        return FakeCamera(usb_bus, uri.removeprefix("v4l2://"), level=1)

    selector = SourceSelector(lambda: [f"v4l2://{CAM}"], factory, retry_s=0.1)
    recorder = Recorder()
    loop = CaptureLoop(selector, recorder)
    loop.start()
    try:
        time.sleep(0.3)
        assert loop.alive and recorder.frames == []
        assert "no such device" in selector.last_error or selector.current is None
        usb_bus.plug(CAM)
        assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}", timeout=2.5)
    finally:
        assert loop.stop(1.5)


class WedgedCamera(FakeCamera):
    """Opens fine, then never delivers a frame (a hung UVC camera whose node stays)."""

    def read(self, timeout: float = 1.0) -> Frame | None:
        time.sleep(timeout)
        return None


def test_a_camera_that_stops_delivering_is_abandoned(usb_bus: FakeUsbBus) -> None:
    usb_bus.plug(CAM)
    usb_bus.plug(FALLBACK)

    def factory(uri: str) -> Source:
        path = uri.removeprefix("v4l2://")
        kind = WedgedCamera if path == CAM else FakeCamera
        return kind(usb_bus, path, level=1)

    selector = SourceSelector(lambda: [f"v4l2://{CAM}", f"v4l2://{FALLBACK}"], factory, retry_s=60)
    recorder = Recorder()
    loop = CaptureLoop(selector, recorder)
    started = time.monotonic()
    loop.start()
    try:
        assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{FALLBACK}", timeout=4.0)
        assert recorder.frames[0][0] - started < 3.0
        assert "no frame for" in selector.last_error
    finally:
        assert loop.stop(1.0)


def test_udev_reporting_both_nodes_of_a_camera_still_counts_as_unplug(rig: Rig) -> None:
    _, selector, monitor, recorder = rig
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{CAM}")
    monitor.handle("remove", CAM)  # the video node ...
    monitor.handle("remove", "/dev/video5")  # ... and its metadata node, at once
    assert wait_until(lambda: recorder.source_at_end() == f"v4l2://{FALLBACK}", timeout=1.0)
    assert "device removed" in selector.last_error


def test_the_monitor_watches_the_subsystem_it_is_given() -> None:
    from appliance.capture.hotplug import HotplugMonitor

    seen: list[tuple[str, str]] = []
    sound = HotplugMonitor(
        lambda node: seen.append(("add", node)),
        lambda node: seen.append(("remove", node)),
        subsystem="sound",
    )
    assert sound.subsystem == "sound" and HotplugMonitor(print, print).subsystem == "video4linux"
    sound.handle("add", "/dev/snd/pcmC1D0c")
    sound.handle("remove", "/dev/snd/pcmC1D0c")
    sound.handle("change", None)  # no node: nothing
    assert seen == [("add", "/dev/snd/pcmC1D0c"), ("remove", "/dev/snd/pcmC1D0c")]
