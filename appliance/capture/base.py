"""The capture interface: a source yields frames; sources are chosen by URI."""

from __future__ import annotations

import abc
import time

from appliance.frame import Frame


class SourceError(RuntimeError):
    """The source cannot be opened or has gone away (unplugged, end of stream)."""


class Source(abc.ABC):
    """A camera, a file or a generator.

    ``read`` blocks like a camera does: a live device blocks until the sensor delivers;
    file and synthetic sources pace themselves at their nominal frame rate. ``read``
    raises ``SourceError`` when the device is gone, so the selector can fall back.
    """

    uri: str

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the device; raise SourceError with a human-readable reason."""

    @abc.abstractmethod
    def read(self, timeout: float = 1.0) -> Frame | None:
        """Next frame, or None if nothing arrived within ``timeout`` seconds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    @property
    @abc.abstractmethod
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames it delivers."""

    @property
    @abc.abstractmethod
    def fps(self) -> float:
        """Nominal frame rate."""

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pacer:
    """Sleeps so that successive ticks are 1/fps apart, without drifting.

    A caller that falls behind by more than one period skips ahead instead of
    bursting to catch up: a late frame is better than a burst of stale ones.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next: float | None = None

    def wait(self, timeout: float) -> bool:
        """Sleep until the next tick; False if that is further away than ``timeout``."""
        now = time.monotonic()
        if self._next is None or now - self._next > self.period:
            self._next = now
        delay = self._next - now
        if delay > timeout:
            return False
        if delay > 0:
            time.sleep(delay)
        self._next += self.period
        return True
