import time

import pytest

from appliance.pipeline.stats import StageStats


def test_percentiles_and_counters() -> None:
    stats = StageStats("s")
    for ms in range(1, 101):
        stats.record(ms / 1000.0)
    stats.drop(3)
    stats.error()
    snap = stats.snapshot()
    assert snap.processed == 100
    assert snap.dropped == 4 and snap.errors == 1
    assert snap.p50_ms == pytest.approx(50.5, abs=0.01)
    assert snap.p99_ms == pytest.approx(99.01, abs=0.01)


def test_fps_counts_only_recent_samples() -> None:
    stats = StageStats("s")
    old = time.monotonic() - 100.0
    for i in range(31):
        stats.record(0.001, now=old + i / 30.0)
    assert stats.snapshot().fps == 0.0
    now = time.monotonic()
    for i in range(31):
        stats.record(0.001, now=now - 1.0 + i / 30.0)
    assert stats.snapshot().fps == pytest.approx(30.0, rel=0.01)
