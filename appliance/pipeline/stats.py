"""Per-stage latency and counters, cheap enough to update on every frame."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

WINDOW = 1024  # latency samples kept for percentiles (~30 s at 30 fps)


@dataclass(frozen=True)
class StageSnapshot:
    name: str
    processed: int
    dropped: int
    errors: int
    p50_ms: float
    p99_ms: float
    fps: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "processed": self.processed,
            "dropped": self.dropped,
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "fps": round(self.fps, 2),
        }


class StageStats:
    """Latency ring buffer plus processed/dropped/error counts for one stage."""

    def __init__(self, name: str, window: int = WINDOW) -> None:
        self.name = name
        self._lat = np.zeros(window, dtype=np.float64)
        self._stamps = np.zeros(window, dtype=np.float64)
        self._n = 0
        self._lock = threading.Lock()
        self.processed = 0
        self.dropped = 0
        self.errors = 0

    def record(self, seconds: float, now: float | None = None) -> None:
        with self._lock:
            i = self._n % len(self._lat)
            self._lat[i] = seconds
            self._stamps[i] = time.monotonic() if now is None else now
            self._n += 1
            self.processed += 1

    def drop(self, count: int = 1) -> None:
        with self._lock:
            self.dropped += count

    def error(self) -> None:
        with self._lock:
            self.errors += 1
            self.dropped += 1

    def reset(self) -> None:
        with self._lock:
            self._n = 0
            self.processed = self.dropped = self.errors = 0

    def snapshot(self, fps_window: float = 2.0) -> StageSnapshot:
        with self._lock:
            n = min(self._n, len(self._lat))
            lat = self._lat[:n].copy()
            stamps = self._stamps[:n].copy()
            processed, dropped, errors = self.processed, self.dropped, self.errors
        p50 = p99 = 0.0
        if n:
            p50, p99 = (float(v) * 1000.0 for v in np.percentile(lat, [50, 99]))
        recent = stamps[stamps >= time.monotonic() - fps_window]
        fps = 0.0
        if len(recent) >= 2:
            span = float(recent.max() - recent.min())
            fps = (len(recent) - 1) / span if span > 0 else 0.0
        return StageSnapshot(self.name, processed, dropped, errors, p50, p99, fps)
