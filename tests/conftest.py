"""Shared fixtures and in-memory fakes for hardware that cannot exist here."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.capture.base import Pacer, Source, SourceError
from appliance.frame import Frame

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A file from ../shared/data; skipped when absent, but a failure under CI=true."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"shared data missing: {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class FakeUsbBus:
    """Which fake device nodes are plugged in."""

    def __init__(self) -> None:
        self.plugged: set[str] = set()
        self._lock = threading.Lock()

    def plug(self, path: str) -> None:
        with self._lock:
            self.plugged.add(path)

    def unplug(self, path: str) -> None:
        with self._lock:
            self.plugged.discard(path)

    def __contains__(self, path: str) -> bool:
        with self._lock:
            return path in self.plugged


class FakeCamera(Source):
    """A USB camera that can be unplugged: reads fail once its node is gone.

    Each camera paints a distinct grey level so tests can tell sources apart.
    """

    def __init__(self, bus: FakeUsbBus, path: str, level: int, fps: float = 30.0) -> None:
        self.bus = bus
        self.path = path
        self.uri = f"v4l2://{path}"
        self.level = level
        self._fps = fps
        self._pacer = Pacer(fps)
        self._open = False
        self._seq = 0

    def open(self) -> None:
        if self.path not in self.bus:
            raise SourceError(f"{self.path}: no such device")
        self._open = True

    def read(self, timeout: float = 1.0) -> Frame | None:
        if not self._open:
            raise SourceError("read before open")
        if not self._pacer.wait(timeout):
            return None
        if self.path not in self.bus:
            raise SourceError(f"{self.path}: disconnected")
        self._seq += 1
        image = np.full((48, 64, 3), self.level, np.uint8)
        return Frame(image=image, seq=self._seq, t_capture=time.monotonic(), source=self.uri)

    def close(self) -> None:
        self._open = False

    @property
    def size(self) -> tuple[int, int]:
        return (64, 48)

    @property
    def fps(self) -> float:
        return self._fps


@pytest.fixture
def usb_bus() -> FakeUsbBus:
    return FakeUsbBus()


def wait_until(
    predicate: Callable[[], object], timeout: float = 2.0, interval: float = 0.01
) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
