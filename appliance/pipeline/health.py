"""Whether each stage keeps up: the share of frames it dropped or failed on, recently.

A newest-frame-wins queue drops a frame when its stage is slower than what feeds it;
now and then that is the design working, but a stage that drops a fifth of its frames
for half a minute is a camera that stutters, and a stage that fails on frames is broken:
both make the daemon degraded, with the stage named, instead of a green badge over a
climbing "dropped" counter.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

WINDOW_S = 30.0
MAX_DROPPED = 0.20  # share of a stage's frames dropped (queue overflow or failure)
MAX_FAILED = 0.05  # share of a stage's frames that raised
MIN_FRAMES = 30  # fewer frames than this in the window say nothing either way

Counts = dict[str, tuple[int, int, int]]  # stage -> processed, dropped, errors


class DropWatch:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, Counts]] = deque([(clock(), {})])
        self._lock = threading.Lock()  # asked from the main loop, web workers, telemetry

    def problems(self, stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """One line per stage over its limits, comparing ``stages`` (the pipeline's
        per-stage stats now) with the oldest sample still in the window."""
        with self._lock:
            now = self._clock()
            counts = {name: _counts(stats) for name, stats in stages.items()}
            latest = self._samples[-1][1]
            if any(_less(c, latest.get(n, (0, 0, 0))) for n, c in counts.items()):
                self._samples.clear()  # the counters were reset: start again from zero
                self._samples.append((now, {}))
            self._samples.append((now, counts))
            while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW_S:
                self._samples.popleft()
            since, baseline = self._samples[0]
        span = max(now - since, 0.0)
        out = []
        for name, (processed, dropped, errors) in counts.items():
            before = baseline.get(name, (0, 0, 0))
            done, lost, failed = processed - before[0], dropped - before[1], errors - before[2]
            seen = done + lost  # a failed frame counts as dropped too
            if seen < MIN_FRAMES:
                continue
            if failed > MAX_FAILED * seen:
                out.append(f"{name}: failed on {failed} of {seen} frames in {span:.0f} s")
            elif lost > MAX_DROPPED * seen:
                out.append(
                    f"{name}: dropped {lost} of {seen} frames ({100 * lost / seen:.0f}%) "
                    f"in {span:.0f} s: too slow for its input"
                )
        return out


def _counts(stats: Mapping[str, Any]) -> tuple[int, int, int]:
    return int(stats["processed"]), int(stats["dropped"]), int(stats["errors"])


def _less(now: tuple[int, int, int], before: tuple[int, int, int]) -> bool:
    return any(a < b for a, b in zip(now, before, strict=True))
