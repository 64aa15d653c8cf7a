"""The microphone path, on one thread: source -> gain -> noise removal -> mute -> sink.

Settings changes are queued and applied by the audio thread between two blocks, never
mid-block (as the video stages do). A block whose noise removal raises is counted and
passed on unprocessed. A source or sink that fails (whatever it raises) is closed,
counted, reported in ``status`` and reopened with back-off (0.5 s doubling to 10 s)
while the rest of the camera goes on; a sink is reopened as the same object, so a file
sink appends to its recording. The thread ends only on ``stop()``. GTCRN that cannot
load falls back to the spectral suppressor, with the reason.

Telemetry (``status``): per second, input (as captured) and output RMS and peak dBFS and
clipped samples; running totals of blocks, xruns/dropped blocks (the source's own
reports, gaps in its timestamps, blocks the sink refused) and failed blocks; noise
removal ms per block p50/p99 over the last ``LATENCY_WINDOW`` blocks. ``recording()``
gives the last ``RING_SECONDS`` before and after processing: the ring a later web page
will read to let one listen (no such page exists yet).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.audio.sinks import AudioSink, AudioSinkError, open_audio_sink
from appliance.audio.sources import (
    BLOCK,
    BLOCK_NS,
    RATE,
    AudioSource,
    AudioSourceError,
    open_audio_source,
)
from appliance.audio.suppress import Passthrough, SpectralSuppressor, Suppressor

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.1
SILENT_S = 2.0  # an open source that delivers nothing this long is treated as dead
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0
LOOP_ERROR_WAIT_S = 0.1  # after an unexpected error in the loop, before going on
RING_SECONDS = 5.0
LATENCY_WINDOW = 1000  # blocks (10 s)
FLOOR_DBFS = -120.0


@dataclass(frozen=True)
class AudioSettings:
    enabled: bool = True
    input: str = "synthetic://"
    output: str = "null"
    noise_removal: str = "gtcrn"  # off | spectral | gtcrn
    strength: float = 1.0
    gain_db: float = 0.0
    mute: bool = False


def make_suppressor(method: str, strength: float) -> tuple[Suppressor, str]:
    """The suppressor for ``method``, and why it is not the one asked for (or "")."""
    if method == "off":
        return Passthrough(strength), ""
    if method == "gtcrn":
        try:
            from appliance.audio.suppress import GtcrnSuppressor

            return GtcrnSuppressor(strength), ""
        except Exception as exc:  # a missing runtime, a bad file: the classical one works
            reason = f"gtcrn unavailable ({exc}); using spectral"
            log.warning("noise removal: %s", reason)
            return SpectralSuppressor(strength), reason
    return SpectralSuppressor(strength), ""


def _dbfs(value: float) -> float:
    if value <= 0:
        return FLOOR_DBFS
    return round(max(FLOOR_DBFS, 20.0 * math.log10(value)), 1)


class _Ring:
    """The last ``size`` samples."""

    def __init__(self, size: int) -> None:
        self._data = np.zeros(size, dtype=np.float32)
        self._written = 0

    def push(self, block: np.ndarray) -> None:
        n, size = len(block), len(self._data)
        start = self._written % size
        first = min(n, size - start)
        self._data[start : start + first] = block[:first]
        self._data[: n - first] = block[first:]
        self._written += n

    def get(self) -> np.ndarray:
        size = len(self._data)
        if self._written < size:
            return self._data[: self._written].copy()
        start = self._written % size
        return np.concatenate([self._data[start:], self._data[:start]])


class _Endpoint:
    """A source or sink with its error and the time it may be reopened."""

    def __init__(self) -> None:
        self.error = ""
        self.retry_at = 0.0
        self.backoff = RETRY_MIN_S
        self.reopens = 0
        self.failures = 0
        self.opened_once = False

    def failed(self, reason: str, now: float) -> None:
        if reason != self.error:
            log.warning("audio: %s", reason)
        self.failures += 1
        self.error = reason
        self.retry_at = now + self.backoff
        self.backoff = min(RETRY_MAX_S, self.backoff * 2)

    def retry_now(self) -> None:
        """A device came or went: try again at once, from the shortest back-off."""
        self.retry_at = 0.0
        self.backoff = RETRY_MIN_S

    def opened(self) -> None:
        if self.opened_once:
            self.reopens += 1
        self.opened_once = True
        self.error = ""
        self.backoff = RETRY_MIN_S


class AudioPipeline:
    def __init__(
        self,
        settings: AudioSettings | None = None,
        open_source: Callable[[str], AudioSource] = open_audio_source,
        open_sink: Callable[[str], AudioSink] = open_audio_sink,
        suppressor: Callable[[str, float], tuple[Suppressor, str]] = make_suppressor,
    ) -> None:
        self.settings = settings or AudioSettings()
        self._open_source, self._open_sink = open_source, open_sink
        self._make_suppressor = suppressor
        self._controls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the telemetry and the rings
        self.source: AudioSource | None = None
        self.sink: AudioSink | None = None
        self._sink_made: AudioSink | None = None  # reopened after a failure, not remade
        self._source_state, self._sink_state = _Endpoint(), _Endpoint()
        self._suppressor: Suppressor | None = None
        self.suppressor_note = ""
        self._before, self._after = _Ring(int(RING_SECONDS * RATE)), _Ring(int(RING_SECONDS * RATE))
        self._ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.blocks = self.xruns = self.errors = self.sink_drops = 0
        self._last_t: int | None = None
        self._last_block_at = 0.0
        self._second = self._new_second()
        self.last_second: dict[str, Any] = {}
        self.heartbeat = time.monotonic()
        self.failure: BaseException | None = None
        self.loop_errors = 0  # unexpected errors the loop survived

    # -- control ----------------------------------------------------------------------

    def configure(self, settings: AudioSettings) -> None:
        """Apply ``settings`` on the audio thread between two blocks."""
        self._controls.put(lambda: self._apply(settings))

    def device_changed(self, devnode: str = "") -> None:
        """udev saw a sound device come or go (a USB microphone plugged in, the gadget's
        card made): a closed input or output is retried at once, not after its back-off
        (up to 10 s). Applied on the audio thread, between two blocks."""

        def retry() -> None:
            self._source_state.retry_now()
            self._sink_state.retry_now()

        self._controls.put(retry)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        self._close_all()
        return True

    def recording(self) -> tuple[np.ndarray, np.ndarray]:
        """(before, after): the last ``RING_SECONDS`` as captured and as sent, 48 kHz."""
        with self._lock:
            return self._before.get(), self._after.get()

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            try:
                self._apply(self.settings)
            except Exception:
                log.exception("audio: applying the settings failed")
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                try:
                    self.apply_controls()
                    self.step()
                except Exception:  # the thread ends only on stop(): log, wait, go on
                    self.loop_errors += 1
                    if self.loop_errors <= 5 or self.loop_errors % 100 == 0:
                        log.exception("audio: the loop failed (%d so far)", self.loop_errors)
                    self._stop.wait(LOOP_ERROR_WAIT_S)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...
            self.failure = exc
            log.exception("audio thread died")
        finally:
            self._close_all()

    def apply_controls(self) -> None:
        while True:
            try:
                change = self._controls.get_nowait()
            except queue.Empty:
                return
            try:
                change()
            except Exception:
                log.exception("audio: settings change failed")

    def _apply(self, new: AudioSettings) -> None:
        old, self.settings = self.settings, new
        first = self._suppressor is None
        if new.input != old.input or not new.enabled:
            self._close_source()
            self._source_state = _Endpoint()
        if new.output != old.output or not new.enabled:
            self._close_sink()
            self._sink_made = None
            self._sink_state = _Endpoint()
        if first or new.noise_removal != old.noise_removal:
            self._suppressor, self.suppressor_note = self._make_suppressor(
                new.noise_removal, new.strength
            )
        elif self._suppressor is not None:
            self._suppressor.strength = new.strength

    def step(self) -> None:
        """One round of the loop: (re)open what is closed, then move one block."""
        now = time.monotonic()
        if not self.settings.enabled:
            self._stop.wait(0.1)
            return
        if self.source is None and now >= self._source_state.retry_at:
            self._try_open_source(now)
        if self.sink is None and now >= self._sink_state.retry_at:
            self._try_open_sink(now)
        source = self.source
        if source is None:
            wait = self._source_state.retry_at - time.monotonic()
            self._stop.wait(min(0.1, max(0.0, wait)))
            return
        try:
            block = source.read(READ_TIMEOUT_S)
        except AudioSourceError as exc:
            self._source_failed(str(exc))
            return
        except Exception as exc:  # a bug or an OS error in the source: reopen it as well
            log.debug("audio: reading %s failed", source.uri, exc_info=True)
            self._source_failed(f"{source.uri}: {type(exc).__name__}: {exc}")
            return
        if block is None:
            if time.monotonic() - self._last_block_at > SILENT_S:
                self._source_failed(f"{source.uri}: no audio for {SILENT_S:g} s")
            return
        self._last_block_at = time.monotonic()
        self.process(block.samples, block.t_capture_ns, block.xruns)

    def _try_open_source(self, now: float) -> None:
        try:
            source = self._open_source(self.settings.input)
            source.open()
        except (AudioSourceError, ValueError, OSError) as exc:
            self._source_state.failed(str(exc), now)
            return
        except Exception as exc:
            log.debug("audio: opening %s failed", self.settings.input, exc_info=True)
            self._source_state.failed(f"{self.settings.input}: {type(exc).__name__}: {exc}", now)
            return
        log.info("audio: capturing from %s", source.uri)
        self.source = source
        self._source_state.opened()
        self._last_t = None
        self._last_block_at = time.monotonic()

    def _try_open_sink(self, now: float) -> None:
        try:
            sink = self._sink_made or self._open_sink(self.settings.output)
            self._sink_made = sink
            sink.open()
        except (AudioSinkError, ValueError, OSError) as exc:
            self._sink_state.failed(str(exc), now)
            return
        except Exception as exc:
            log.debug("audio: opening %s failed", self.settings.output, exc_info=True)
            self._sink_state.failed(f"{self.settings.output}: {type(exc).__name__}: {exc}", now)
            return
        self.sink = sink
        self._sink_state.opened()

    def _source_failed(self, reason: str) -> None:
        self._close_source()
        self._source_state.failed(reason, time.monotonic())

    def _close_source(self) -> None:
        source, self.source = self.source, None
        self._close(source)

    def _close_sink(self) -> None:
        sink, self.sink = self.sink, None
        self._close(sink)

    @staticmethod
    def _close(end: AudioSource | AudioSink | None) -> None:
        if end is not None:
            try:
                end.close()
            except Exception:
                log.exception("audio: closing %s failed", end.uri)

    def _close_all(self) -> None:
        self._close_source()
        self._close_sink()

    # -- one block --------------------------------------------------------------------

    def process(self, samples: np.ndarray, t_capture_ns: int = 0, xruns: int = 0) -> np.ndarray:
        """Gain, noise removal, mute and the sink for one block; returns what was sent."""
        s = self.settings
        x = np.asarray(samples, dtype=np.float32)
        gained = x * np.float32(10 ** (s.gain_db / 20)) if s.gain_db else x
        suppressor = self._suppressor
        start = time.perf_counter()
        try:
            y = suppressor.process(gained) if suppressor is not None else gained
            if len(y) != len(gained) or not np.isfinite(y).all():
                raise ValueError(f"noise removal returned {len(y)} samples or non-finite ones")
        except Exception:
            self.errors += 1
            if self.errors <= 5 or self.errors % 100 == 0:
                log.exception("audio: noise removal failed on a block (%d so far)", self.errors)
            y = gained  # passed on unprocessed
            if suppressor is not None:
                try:
                    suppressor.reset()
                except Exception:
                    log.debug("audio: suppressor reset failed", exc_info=True)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if s.mute:
            y = np.zeros_like(y)
        clipped = int(np.count_nonzero(np.abs(y) >= 1.0))
        y = np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)
        gap = 0
        if t_capture_ns and self._last_t is not None:
            gap = max(0, round((t_capture_ns - self._last_t) / BLOCK_NS) - 1)
        if t_capture_ns:
            self._last_t = t_capture_ns
        delivered = True
        sink = self.sink
        if sink is not None:
            try:
                delivered = sink.write(y)
            except Exception as exc:  # AudioSinkError, or a bug or OS error: reopen it
                reason = str(exc)
                if not isinstance(exc, AudioSinkError):
                    log.debug("audio: writing to %s failed", sink.uri, exc_info=True)
                    reason = f"{sink.uri}: {type(exc).__name__}: {exc}"
                self._close_sink()
                self._sink_state.failed(reason, time.monotonic())
                delivered = False
        with self._lock:
            self._before.push(x)
            self._after.push(y)
            self._ms.append(elapsed_ms)
            self.blocks += 1
            self.xruns += max(xruns, gap)
            self.sink_drops += 0 if delivered else 1
            self._account(x, y, clipped)
        return y

    def _new_second(self) -> dict[str, Any]:
        return {
            "blocks": 0,
            "in_sq": 0.0,
            "in_peak": 0.0,
            "out_sq": 0.0,
            "out_peak": 0.0,
            "clip": 0,
        }

    def _account(self, x: np.ndarray, y: np.ndarray, clipped: int) -> None:
        sec = self._second
        sec["blocks"] += 1
        sec["in_sq"] += float(np.dot(x, x))
        sec["out_sq"] += float(np.dot(y, y))
        sec["in_peak"] = max(sec["in_peak"], float(np.abs(x).max(initial=0.0)))
        sec["out_peak"] = max(sec["out_peak"], float(np.abs(y).max(initial=0.0)))
        sec["clip"] += clipped
        if sec["blocks"] * BLOCK >= RATE:
            n = sec["blocks"] * BLOCK
            self.last_second = {
                "input_rms_dbfs": _dbfs(float(np.sqrt(sec["in_sq"] / n))),
                "input_peak_dbfs": _dbfs(sec["in_peak"]),
                "output_rms_dbfs": _dbfs(float(np.sqrt(sec["out_sq"] / n))),
                "output_peak_dbfs": _dbfs(sec["out_peak"]),
                "clipped": sec["clip"],
            }
            self._second = self._new_second()

    # -- status -----------------------------------------------------------------------

    def problem(self) -> str | None:
        if not self.settings.enabled:
            return None
        if self.failure is not None:
            return f"audio thread stopped: {self.failure!r}"
        return self._source_state.error or self._sink_state.error or None

    def status(self) -> dict[str, Any]:
        s = self.settings
        with self._lock:
            ms = np.array(self._ms, dtype=np.float64)
            level = dict(self.last_second)
            blocks, xruns, errors, drops = self.blocks, self.xruns, self.errors, self.sink_drops
        p50, p99 = (
            (round(float(v), 3) for v in np.percentile(ms, [50, 99])) if len(ms) else (0.0, 0.0)
        )
        suppressor = self._suppressor
        # read once: the audio thread may close (set to None) either between two reads
        source, sink = self.source, self.sink
        source_state, sink_state = self._source_state, self._sink_state
        return {
            "enabled": s.enabled,
            "input": source.uri if source is not None else None,
            "output": sink.uri if sink is not None else None,
            "input_error": source_state.error or None,
            "output_error": sink_state.error or None,
            "reopens": source_state.reopens,
            "input_failures": source_state.failures,
            "output_failures": sink_state.failures,
            "noise_removal": type(suppressor).__name__ if suppressor is not None else None,
            "noise_removal_note": self.suppressor_note or None,
            "latency_ms": round(suppressor.latency_ms, 2) if suppressor is not None else 0.0,
            "noise_removal_ms_p50": p50,
            "noise_removal_ms_p99": p99,
            "blocks": blocks,
            "xruns": xruns,
            "sink_dropped": drops,
            "failed_blocks": errors,
            "loop_errors": self.loop_errors,
            "level": level,
            "mute": s.mute,
            "problem": self.problem(),
        }
