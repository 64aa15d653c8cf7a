"""The frame path: stages in a chain, then a fan-out to sinks; a thread for each.

Every hop is a LatestQueue, so a slow stage or sink drops stale frames instead of
building a backlog. Control changes are queued per worker and applied by that
worker between two frames, never while a frame is half processed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from appliance.frame import Frame
from appliance.pipeline.queue import LatestQueue
from appliance.pipeline.stage import RunsModels, Sink, Stage
from appliance.pipeline.stats import StageStats

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.1  # how often an idle worker looks at its control queue and stop flag


class _Worker:
    """A thread that takes frames from ``inbox`` and hands them to ``handle``."""

    def __init__(self, name: str, depth: int) -> None:
        self.name = name
        self.inbox: LatestQueue[Frame] = LatestQueue(depth)
        self.stats = StageStats(name)
        self.controls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.handle: Callable[[Frame], None] = lambda frame: None
        self._thread = threading.Thread(target=self._run, name=f"pipeline-{name}", daemon=True)
        self.failure: BaseException | None = None
        self.busy_since: float | None = None  # when the frame in hand was taken

    def start(self) -> None:
        self._thread.start()

    def offer(self, frame: Frame) -> None:
        """Queue ``frame``; a frame that was still waiting is dropped and counted."""
        if not self.inbox.put(frame):
            self.stats.drop()

    def frame_failed(self, frame: Frame) -> None:
        """Count a frame lost to an exception; log the first few and then every 100th."""
        self.stats.error()
        if self.stats.errors <= 5 or self.stats.errors % 100 == 0:
            log.exception(
                "%s: frame %d dropped (%d so far)", self.name, frame.seq, self.stats.errors
            )

    def _apply_controls(self) -> None:
        while True:
            try:
                change = self.controls.get_nowait()
            except queue.Empty:
                return
            try:
                change()
            except Exception:
                log.exception("%s: control change failed", self.name)

    def _run(self) -> None:
        try:
            while not self.inbox.closed:
                self._apply_controls()
                frame = self.inbox.get(IDLE_POLL_S)
                if frame is None:
                    continue
                self._apply_controls()
                self.busy_since = time.monotonic()
                self.handle(frame)
                self.busy_since = None
        except BaseException as exc:  # a bug in the loop itself, not in one frame
            self.failure = exc
            log.exception("%s: worker died", self.name)

    def stop(self) -> None:
        self.inbox.close()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class ModelSwap:
    """Stages switching to new networks, each on its own thread between two frames."""

    def __init__(self, stages: int) -> None:
        self.problems: list[str] = []
        self._left = stages
        self._lock = threading.Lock()
        self._done = threading.Event()
        if stages == 0:
            self._done.set()

    def run(self, stage: RunsModels, models: Any) -> None:
        try:
            stage.swap_models(models)
        except Exception as exc:
            log.exception("%s: model swap failed", getattr(stage, "name", stage))
            self.problems.append(f"{getattr(stage, 'name', stage)}: swap failed: {exc}")
        finally:
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._done.set()

    def done(self, timeout: float) -> bool:
        """Whether every stage has swapped (or failed to), waiting up to ``timeout``."""
        return self._done.wait(timeout)

    def wait(self, timeout: float) -> list[str]:
        """The problems once every stage swapped; a stage that did not in time is one."""
        if not self.done(timeout):
            return [f"the pipeline did not take the new models within {timeout:.0f} s"]
        return list(self.problems)


class Pipeline:
    """Runs ``stages`` in order, then gives each result to every sink.

    A stage that raises on a frame drops that frame and counts an error; the
    pipeline goes on. ``submit`` is called by the capture thread.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        sinks: Sequence[Sink],
        depth: int = 1,
        idle_unwatched: bool = False,
    ) -> None:
        # A webcam: while no sink wants frames (no host streaming, nobody on the page,
        # no codec call) the stages do no work at all; the capture keeps running.
        self.idle_unwatched = idle_unwatched
        self.idle_frames = 0
        self.stages = list(stages)
        self.sinks = list(sinks)
        self.capture_stats = StageStats("capture")
        self.output_latency = StageStats("capture_to_output")
        self._stage_workers = [_Worker(s.name, depth) for s in self.stages]
        self._sink_workers = [_Worker(s.name, depth) for s in self.sinks]
        for i, (worker, stage) in enumerate(zip(self._stage_workers, self.stages, strict=True)):
            nxt = self._stage_workers[i + 1] if i + 1 < len(self._stage_workers) else None
            worker.handle = self._stage_handler(stage, worker, nxt)
        for worker, sink in zip(self._sink_workers, self.sinks, strict=True):
            worker.handle = self._sink_handler(sink, worker)
        self._started = False

    # -- frame path ---------------------------------------------------------------

    def submit(self, frame: Frame) -> None:
        """Entry point for captured frames; a frame still waiting is replaced."""
        self.capture_stats.record(0.0)
        if self.idle_unwatched and not any(sink.wants_frames() for sink in self.sinks):
            self.idle_frames += 1
            return
        if self._stage_workers:
            self._stage_workers[0].offer(frame)
        else:
            self._fan_out(frame)

    def _stage_handler(
        self, stage: Stage, worker: _Worker, nxt: _Worker | None
    ) -> Callable[[Frame], None]:
        def handle(frame: Frame) -> None:
            start = time.perf_counter()
            try:
                result = stage.process(frame)
            except Exception:
                worker.frame_failed(frame)
                return
            worker.stats.record(time.perf_counter() - start)
            if result is None:
                return
            if nxt is not None:
                nxt.offer(result)
            else:
                self._fan_out(result)

        return handle

    def _fan_out(self, frame: Frame) -> None:
        for worker, sink in zip(self._sink_workers, self.sinks, strict=True):
            if sink.wants_frames():
                worker.offer(frame)

    def _sink_handler(self, sink: Sink, worker: _Worker) -> Callable[[Frame], None]:
        def handle(frame: Frame) -> None:
            start = time.perf_counter()
            try:
                delivered = sink.consume(frame)
            except Exception:
                worker.frame_failed(frame)
                return
            now = time.monotonic()
            if delivered:
                worker.stats.record(time.perf_counter() - start)
                self.output_latency.record(now - frame.t_capture, now)

        return handle

    # -- control ----------------------------------------------------------------------

    def configure(self, config: Any) -> None:
        """Hand ``config`` to every stage and sink, each applying it between frames."""
        for worker, part in zip(self._workers(), self._parts(), strict=True):
            worker.controls.put(partial(part.configure, config))

    def between_frames(self, part: Stage | Sink, change: Callable[[], None]) -> None:
        """Run ``change`` on ``part``'s own thread before its next frame."""
        worker = dict(zip(map(id, self._parts()), self._workers(), strict=True))[id(part)]
        worker.controls.put(change)

    def reload_models(self, bundles_dir: Path) -> ModelSwap:
        """Verify and load every stage's networks from ``bundles_dir``, then swap them in
        between frames; ``wait()`` on the result says when every stage runs them.

        All or nothing: a bad bundle raises (BundleError/ModelError/OSError) before any
        stage changes, and the models running now keep running (those already loaded
        for the update are dropped). Loading happens on the caller's thread, so the
        stages do not stall while a model loads.
        """
        stages = [s for s in self.stages if isinstance(s, RunsModels)]
        loaded = [(stage, stage.load_models(bundles_dir)) for stage in stages]
        swap = ModelSwap(len(loaded))
        for stage, models in loaded:
            self.between_frames(stage, partial(swap.run, stage, models))
        log.info("new models queued from %s", bundles_dir)
        return swap

    def _workers(self) -> list[_Worker]:
        return [*self._stage_workers, *self._sink_workers]

    def _parts(self) -> list[Stage | Sink]:
        return [*self.stages, *self.sinks]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        for worker in self._workers():
            worker.start()
        self._started = True

    def stop(self, timeout: float = 1.0) -> list[str]:
        """Stop every worker; returns the names of those that did not finish in time."""
        for worker in self._workers():
            worker.stop()
        deadline = time.monotonic() + timeout
        hung = []
        for worker, part in zip(self._workers(), self._parts(), strict=True):
            if not worker.join(max(0.0, deadline - time.monotonic())):
                hung.append(worker.name)
                continue  # still inside process(): closing it under its feet could crash
            try:
                part.close()
            except Exception:
                log.exception("%s: close failed", part.name)
        return hung

    def failure(self) -> str | None:
        """Why the pipeline cannot go on (a worker died), or None while healthy."""
        for worker in self._workers():
            died = worker.failure is not None or (self._started and not worker.alive)
            if died and not worker.inbox.closed:
                return f"{worker.name} worker stopped: {worker.failure!r}"
        return None

    def stuck(self, limit_s: float) -> str | None:
        """A worker that has been on one frame for more than ``limit_s``, or None."""
        now = time.monotonic()
        for worker in self._workers():
            since = worker.busy_since
            if since is not None and now - since > limit_s:
                return f"{worker.name} has been on one frame for {now - since:.0f} s"
        return None

    def stats(self) -> dict[str, Any]:
        stages = {w.name: w.stats.snapshot().to_dict() for w in self._workers()}
        capture = self.capture_stats.snapshot()
        latency = self.output_latency.snapshot()
        dropped = sum(int(s["dropped"]) for s in stages.values())
        # Throughput of the stages themselves; sinks idle while nobody watches.
        last = self._stage_workers[-1].stats.snapshot() if self._stage_workers else capture
        return {
            "fps": round(last.fps, 2),
            "capture_fps": round(capture.fps, 2),
            "output_fps": round(latency.fps, 2),
            "frames_in": capture.processed,
            "frames_processed": last.processed,
            "frames_idle": self.idle_frames,  # captured while nobody wanted the picture
            "frames_out": latency.processed,
            "dropped": dropped,
            "latency": {"p50_ms": round(latency.p50_ms, 3), "p99_ms": round(latency.p99_ms, 3)},
            "stages": stages,
        }

    def reset_stats(self) -> None:
        for s in [self.capture_stats, self.output_latency, *(w.stats for w in self._workers())]:
            s.reset()
