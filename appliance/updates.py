"""Model updates inside the daemon (``config.ota``): the update agent's active slot is
what the pipeline runs, and new models are judged by the running pipeline itself.

The agent (:mod:`ota.agent`) does the signing checks, the A/B slots and the crash-safe
state; this module gives it the daemon's health gate:

1. every model in the new slot loads and reproduces its reference outputs here
   (:func:`ota.health.reference_gate`);
2. the pipeline's stages take the new networks between frames;
3. for ``ota.health_s`` seconds the pipeline keeps ``ota.min_rate`` of the frame rate it
   had before, with no failed frame and no dead or stuck thread.

Any failure rolls the slot back and the stages go back to the old networks. A daemon
stopped in the middle of the gate leaves the job where it was (``health``): the next
start loads the new slot again and re-runs the gate, and a daemon that keeps dying on
the new models has it rolled back before loading it (:meth:`Agent.note_start`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ota.agent import Agent
from ota.compat import Device
from ota.errors import AgentError
from ota.health import reference_gate
from ota.layout import default_root
from ota.signing import load_public_keys

if TYPE_CHECKING:
    from appliance.app import Appliance

log = logging.getLogger(__name__)

SWAP_TIMEOUT_S = 30.0  # every stage takes new models between two frames: far less
FOLLOW_EVERY_S = 2.0  # how often the daemon checks for a slot switched by `appliance ota`
POLL_S = 0.25
STOPPING = "stopping in the middle of a model update; the next start resumes it"
PROGRESS_EVERY_S = 1.0
NO_FRAMES_FPS = 0.5  # below this the rate cannot be judged (no camera streaming)


class _Stopping(BaseException):
    """The daemon stops mid-gate: the job must stay in ``health`` for the next start.

    A BaseException, so that the agent's ``run_gate`` (which turns an Exception into a
    failed gate, hence a rollback) lets it through."""


class ModelUpdates:
    """The daemon's update agent; ``install`` is what MQTT and the web page call."""

    def __init__(self, app: Appliance, root: Path, device: Device | None = None) -> None:
        self.app = app
        self.root = Path(root)
        self.agent = Agent(
            self.root, [], device or Device.detect(), self.health_gate, self._progress
        )
        self.agent.on_change = self._report  # every job state, as it happens
        self.on_status: Callable[[dict[str, Any]], None] | None = None
        self._last_progress = 0.0
        self.error: str | None = None  # why updates cannot run (shown in status)
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, app: Appliance, section: Any) -> ModelUpdates:
        return cls(app, Path(section.root) if section.root else default_root())

    # -- start-up -----------------------------------------------------------------------

    def prepare(self, factory: Path) -> Path:
        """Before the stages are built: the directory whose models they load.

        On the first start slot A is filled from the factory bundles; a job whose new
        models kept the daemon from passing its health gate is rolled back here.
        Without a usable agent the factory bundles run and the reason is in status.
        """
        try:
            self.agent.initialize(factory)
            self.agent.note_start()
        except (AgentError, OSError) as exc:
            self.error = str(exc)
            log.error("model updates unavailable: %s; running the factory models", exc)
            return factory
        return self.agent.active_dir.resolve()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ota", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        """Finish a job a previous run left (its gate needs the running pipeline), then
        follow the active slot when ``appliance ota install`` switched it."""
        if self.error is None:
            with self._busy:
                try:
                    self._resume()
                except _Stopping:
                    log.info(STOPPING)
                except (AgentError, OSError) as exc:
                    log.error("model update: %s", exc)
        while not self._stop.wait(FOLLOW_EVERY_S):
            if self.error is None and self._busy.acquire(blocking=False):
                try:
                    self._follow_active()
                finally:
                    self._busy.release()

    # -- updates --------------------------------------------------------------------------

    def install(self, source: str, job: str | None = None) -> dict[str, Any]:
        """Download, verify, install, gate and commit (or roll back) ``source``; returns
        the agent's status. Raises AgentError when no job can start now."""
        if self.error is not None:
            raise AgentError(f"model updates unavailable: {self.error}")
        if not self._busy.acquire(blocking=False):
            raise AgentError("another model update is running")
        try:
            self.agent.public_keys = self._trusted_keys()
            try:
                status = self.agent.install(source, job)
            finally:
                self._follow_active()
        except _Stopping:
            log.info(STOPPING)
            raise AgentError("the daemon is stopping; the next start resumes the update") from None
        finally:
            self._busy.release()
        return status

    def _resume(self) -> None:
        self.agent.public_keys = self._trusted_keys()
        try:
            status = self.agent.resume()
        finally:
            self._follow_active()
        if status["job"] is not None:
            self._report(status)  # a finished job: its final state once more on connect

    def _trusted_keys(self) -> list[Any]:
        """The keys in ``<root>/keys``, read per job so a key added later counts. None:
        every update is refused as unsigned by a trusted key, which the job says."""
        keys = self.agent.layout.keys_dir
        return load_public_keys([keys]) if keys.is_dir() else []

    def _follow_active(self) -> None:
        """Make the stages run the active slot (after a rollback, or a CLI install)."""
        active = self.agent.active_dir.resolve()
        if not active.is_dir() or active == self.app.models_dir:
            return
        log.info("the active models are now %s", active)
        try:
            problems = self.app.reload_models(active).wait(SWAP_TIMEOUT_S)
        except Exception as exc:  # the committed slot itself does not load: say so
            problems = [str(exc)]
        for problem in problems:
            log.error("cannot run the models of %s: %s", active, problem)

    def _report(self, status: dict[str, Any]) -> None:
        if self.on_status is not None:
            self.on_status(status)

    def _progress(self, done: int, total: int | None) -> None:
        """Download progress, at most once a second (a camera may be on a slow link)."""
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S or done == total:
            self._last_progress = now
            self._report(self.agent.status())

    # -- the gate ---------------------------------------------------------------------------

    def health_gate(self, slot: Path) -> list[str]:
        """The problems of ``slot`` judged by this daemon; empty: commit it."""
        problems = reference_gate(slot)
        if problems:
            return problems
        settings = self.app.config.config.ota
        before = float(self.app.pipeline.stats()["fps"])
        swap = self.app.reload_models(slot)  # raises: a problem, nothing swapped
        deadline = time.monotonic() + SWAP_TIMEOUT_S
        while not swap.done(POLL_S):
            if self._stop.is_set():
                raise _Stopping
            if time.monotonic() > deadline:
                return swap.wait(0)
        if swap.problems:
            return swap.problems
        return self._watch(settings.health_s, settings.min_rate, before)

    def _watch(self, seconds: float, min_rate: float, before: float) -> list[str]:
        """Run the pipeline on the new models for ``seconds``; what went wrong."""
        start_stats = self.app.pipeline.stats()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if self._stop.wait(POLL_S):
                raise _Stopping
            trouble = self.app.fatal() or self.app.hung()
            if trouble:
                return [f"on the new models: {trouble}"]
        stats = self.app.pipeline.stats()
        problems = []
        failed = _errors(stats) - _errors(start_stats)
        if failed:
            problems.append(f"{failed} frames failed on the new models in {seconds:.0f} s")
        if before < NO_FRAMES_FPS:
            log.warning("no frames before the update: its frame rate cannot be judged")
            return problems
        frames = stats["frames_processed"] - start_stats["frames_processed"]
        rate = frames / max(time.monotonic() - t0, 1e-3)
        nominal = self.app.frame_rate()
        target = min_rate * min(before, nominal) if nominal else min_rate * before
        if rate < target:
            problems.append(
                f"the pipeline ran at {rate:.1f} fps on the new models, below "
                f"{target:.1f} ({min_rate:.0%} of {min(before, nominal or before):.1f})"
            )
        return problems

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        if self.error is not None:
            return {"state": "unavailable", "error": self.error}
        try:
            agent = self.agent.status()
        except (AgentError, OSError, ValueError) as exc:
            return {"state": "unavailable", "error": str(exc)}
        job = agent["job"] or {}
        return {
            "state": agent["state"],
            "active_slot": agent["active_slot"],
            "committed_slot": agent["committed_slot"],
            "job": {k: job.get(k) for k in ("id", "state", "result", "bundle", "version", "reason")}
            if job
            else None,
        }


def _errors(stats: dict[str, Any]) -> int:
    return sum(int(s["errors"]) for s in stats["stages"].values())
