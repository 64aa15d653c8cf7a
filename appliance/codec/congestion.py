"""How many bits the network carries now: the receiver reports, the sender estimates.

A simplified Google Congestion Control (Holmer et al., "A Google Congestion Control
Algorithm for Real-Time Communication", IETF draft-ietf-rmcat-gcc-02; what WebRTC
runs), in its two halves:

- **delay-based**: one-way delay that keeps growing means a queue is filling at the
  bottleneck, before any packet is lost. The receiver measures, over each report
  interval, how much the delay of its packets grew (their arrival time minus their
  capture timestamp: the clocks' offset cancels in the difference). Above
  ``OVERUSE_MS`` the sender drops its estimate to ``BETA`` times what the receiver got;
  when what got through is under half the estimate, only above ``CLEAR_OVERUSE_MS``: a
  stream sending far below the link has frames big enough for their own serialization
  to read as a few ms of growth, and BETA times a quiet interval's rate would throw the
  estimate to the floor (GCC's adaptive threshold serves the same end), while a link
  that really fell below the stream grows the delay by hundreds of ms per interval.
- **loss-based**: above 10 % loss the estimate shrinks by half the loss fraction;
  below 2 % (and the delay steady) it grows 8 % per report, never past 1.5 times what
  arrived plus ``HEADROOM_KBPS`` (GCC's multiplicative increase and its cap on the
  incoming rate: the estimate grows only as fast as the stream shows it can); in
  between it holds. An interval in which nothing arrived halves it.

Simpler than GCC on purpose: no Kalman/trendline filter (a least-squares slope over the
interval does the job at 2 reports a second), no adaptive threshold (two fixed ones,
by how full the stream keeps the link), no probing. The
estimate drives the hybrid's ``RateController``; the user's ``max_kbps`` caps it.
"""

from __future__ import annotations

import math

import numpy as np

from appliance.codec.bitstream import FRAME_TYPES, SEQ_MOD, Packet, Report, seq_diff

REPORT_INTERVAL_S = 0.5
OVERUSE_MS = 12.0  # delay growth over one interval that means a filling queue
BETA = 0.85
HIGH_LOSS = 0.10
LOW_LOSS = 0.02
GROWTH = 1.08
HEADROOM_KBPS = 8.0
CLEAR_OVERUSE_MS = 4 * OVERUSE_MS  # the growth that is a queue whatever the rate
STEADY_MS = OVERUSE_MS / 3  # delay growth below this is jitter, not a queue
FLOOR_KBPS = 4.0
MAX_SAMPLES = 2048  # delay samples held per interval
JUMP = 1024  # frame sequence numbers skipped at once: a new start, not losses


class ArrivalMonitor:
    """The receiver's half: counts what arrives and how late, one report per interval.

    Loss and delay are read from the frame packets only: the sender's pacer holds
    pictures and keys back on purpose (their capture time is older than their sending)
    and may drop them, which is neither the network's delay nor its loss. Losses are
    counted as RTCP receiver reports count them: the extended highest sequence number
    says how many were expected so far, so a packet reordered across two reports is
    not lost in one and found in the next.
    """

    def __init__(self, interval_s: float = REPORT_INTERVAL_S) -> None:
        self.interval_ms = interval_s * 1000.0
        self._start: float | None = None
        self._bytes = 0
        self._received = 0
        self._delays: list[tuple[float, float]] = []  # (arrival ms, arrival - capture ms)
        self._capture: float | None = None  # the last capture time, unwrapped
        self._last_ts: int | None = None
        self._base: int | None = None  # the first frame seq, extended
        self._highest: int | None = None  # the highest frame seq so far, extended
        self._frames = 0  # frame packets received so far
        self._reported = (0, 0)  # (expected, received) at the last report

    def arrived(self, packet: Packet, size: int, now_ms: float) -> None:
        if self._start is None:
            self._start = now_ms
        self._bytes += size
        self._received += 1
        if packet.type not in FRAME_TYPES:
            return
        self._count(packet.seq)
        self._delays.append((now_ms, now_ms - self._unwrap(packet.timestamp)))
        if len(self._delays) >= MAX_SAMPLES:  # nobody asks for reports (a file decode)
            self._delays = self._delays[::2]

    def report(self, now_ms: float) -> Report | None:
        """The report of the interval now ending (None before it is over, or empty)."""
        if self._start is None or now_ms - self._start < self.interval_ms:
            return None
        expected = 0 if self._highest is None else self._highest - (self._base or 0) + 1
        lost = max(0, (expected - self._reported[0]) - (self._frames - self._reported[1]))
        self._reported = (expected, self._frames)
        report = Report(
            interval_ms=min(0xFFFF, round(now_ms - self._start)),
            bytes=min(0xFFFFFFFF, self._bytes),
            received=min(0xFFFF, self._received),
            lost=min(0xFFFF, lost),
            delay_ms=max(-0x8000, min(0x7FFF, round(self._growth()))),
        )
        self._start, self._bytes, self._received = now_ms, 0, 0
        self._delays.clear()
        return report

    def _count(self, seq: int) -> None:
        self._frames += 1
        if self._highest is None:
            self._base = self._highest = seq
            return
        ahead = seq_diff(seq, self._highest % SEQ_MOD)
        if ahead > JUMP:  # a sender restart or a long outage: not that many losses
            self._reported = (self._reported[0] + ahead - 1, self._reported[1])
        if ahead > 0:
            self._highest += ahead

    def _unwrap(self, ts: int) -> float:
        if self._capture is None or self._last_ts is None:
            self._capture = float(ts)
        else:
            self._capture += seq_diff(ts, self._last_ts)  # 16-bit ms, like sequence numbers
        self._last_ts = ts
        return self._capture

    def _growth(self) -> float:
        """The delay's least-squares slope over the interval, times its length."""
        if len(self._delays) < 3:
            return 0.0
        times, delays = np.asarray(self._delays, np.float64).T
        if np.ptp(times) <= 0:
            return 0.0
        slope = np.polyfit(times - times[0], delays, 1)[0]
        return float(slope * np.ptp(times))


class BandwidthEstimator:
    """The sender's half: a rate (kbit/s) the network carries, from the reports."""

    def __init__(self, ceiling_kbps: float, start_kbps: float | None = None) -> None:
        if not ceiling_kbps >= FLOOR_KBPS:
            raise ValueError(f"ceiling must be at least {FLOOR_KBPS} kbit/s")
        self.ceiling = float(ceiling_kbps)
        self.kbps = min(self.ceiling, start_kbps or self.ceiling)
        self.state = "start"  # what the last report said: overuse, loss, increase, hold

    def update(self, report: Report) -> float:
        if report.interval_ms <= 0:
            return self.kbps
        received = report.bytes * 8 / report.interval_ms  # kbit/s
        total = report.received + report.lost
        loss = report.lost / total if total else 0.0
        if report.received == 0:  # the hybrid always sends: nothing got through
            self.state = "silence"
            self.kbps *= 0.5
        elif report.delay_ms > (OVERUSE_MS if received >= 0.5 * self.kbps else CLEAR_OVERUSE_MS):
            self.state = "overuse"
            self.kbps = min(self.kbps, BETA * received)
        elif loss > HIGH_LOSS:
            self.state = "loss"
            self.kbps *= 1.0 - 0.5 * loss
        elif loss < LOW_LOSS and report.delay_ms <= STEADY_MS:
            self.state = "increase"
            self.kbps = min(self.kbps * GROWTH, max(self.kbps, 1.5 * received + HEADROOM_KBPS))
        else:
            self.state = "hold"
        self.kbps = min(self.ceiling, max(FLOOR_KBPS, self.kbps))
        if not math.isfinite(self.kbps):
            self.kbps = FLOOR_KBPS
        return self.kbps
