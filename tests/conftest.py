"""Shared fixtures and in-memory fakes for hardware that cannot exist here."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.capture.base import Pacer, Source, SourceError
from appliance.frame import Frame
from tests import fuzz as _fuzz  # noqa: F401  (loads the Hypothesis budget profiles)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# The tests' waits were set on an idle 2-core x86 box, where _workload takes about this.
REFERENCE_WORKLOAD_S = 0.012


def _workload() -> float:
    """Seconds for a fixed mix of interpreter and NumPy work (the tests' waits are on
    Python threads driving NumPy, OpenCV and ONNX Runtime)."""
    start = time.perf_counter()
    total = 0
    for i in range(100_000):
        total += i * i % 7
    a = np.random.default_rng(0).random((256, 256))
    for _ in range(20):  # elementwise: one thread, as most of the tests' work (no BLAS pool)
        a = np.tanh(a * 1.5 - a.mean())
    return time.perf_counter() - start


def _measure_slowness() -> float:
    runs = sorted(_workload() for _ in range(5))
    return max(1.0, runs[len(runs) // 2] / REFERENCE_WORKLOAD_S)


#: How many times slower this machine runs, now, than the box the waits were set on:
#: measured once per session (median of five runs), never below 1. Every wait scales by
#: it (``scaled``), so a slower or busier machine waits longer instead of failing. A VM
#: guest (tests/vm) is handed the host's figure in APPLIANCE_TEST_SLOWNESS: its own waits
#: were set for an idle guest, which the host's load slows down alike.
SLOWNESS = float(os.environ.get("APPLIANCE_TEST_SLOWNESS") or 0) or _measure_slowness()


def scaled(seconds: float) -> float:
    """A wait set on the reference box, for this machine."""
    return seconds * SLOWNESS


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
    """Poll ``predicate`` until true or ``timeout`` (scaled to this machine's speed);
    returns its last value."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def pytest_report_header() -> str:
    return f"machine speed: waits scaled x{SLOWNESS:.2f} (tests/conftest.py SLOWNESS)"


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit with pytest's own status even if a test left a thread in native code.

    A thread still inside ONNX Runtime or OpenCV when the interpreter finalizes can
    make the C++ runtime abort the process ("terminate called without an active
    exception"), turning a result into a crash (a failed test that never reached its
    ``stop()`` is enough). Such threads are named here, and the process ends at once
    with pytest's status, skipping the finalization they would crash.
    """
    leftover = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if not leftover or not _EXIT_STATUS:
        return
    names = ", ".join(sorted(t.name for t in leftover))
    print(f"\ntests left {len(leftover)} thread(s) running: {names}", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[-1])
