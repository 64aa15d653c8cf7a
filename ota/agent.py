"""The update agent: a persisted state machine that may be killed at any instant.

A job moves through these states, each persisted in ``state.json`` (:mod:`ota.layout`)::

    download -> verify -> install -> activate -> health -> commit -> done
       |           |         |                    |
       |           v         v                    v
       |         failed    failed              rollback -> rolled_back
       +--> (stays in download after a network error; resume retries)

Why it cannot brick the camera:

1. A transition is written (temp file, fsync, rename, fsync of the directory) BEFORE
   the side effects that depend on it: the pointer switch happens only after
   ``activate`` is on disk, the switch back only after ``rollback`` is.
2. Every state's work is idempotent and starts from what is on disk, so after a kill
   :meth:`Agent.resume` simply runs the recorded state again: a download continues from
   its ``.partial`` file, an install wipes and rebuilds the inactive slot, a pointer
   switch to where it already points is a no-op.
3. Only the inactive slot is ever written, and the ``active`` pointer (an atomically
   replaced symbolic link) moves only to a slot whose every file was hash-checked.
   So ``active`` always names a complete, verified set of bundles: the old one until
   activation, the new one after, the old one again after a rollback.
4. The anti-rollback high-water mark (per bundle name) lives in the same state file
   and is raised in the same atomic write that commits the job.

Verification refusals (bad signature, unknown key, hashes, archive damage, wrong board,
older version) end the job in ``failed`` before any slot is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ota import fsio, signing
from ota.compat import Device, check_compatible, compare_versions
from ota.download import Progress, fetch
from ota.errors import AgentError, DowngradeError, DownloadError, UpdateError
from ota.health import HealthGate, bundle_dirs, hash_gate, reference_gate, run_gate
from ota.layout import Layout, other_slot, slot_versions

log = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "rolled_back")
ABORTABLE = ("download", "verify", "install")
START_LIMIT = 3  # daemon starts on unproven new models before they are rolled back


def _raise_high_water(high_water: dict[str, str], name: str, version: str) -> None:
    """The anti-rollback mark of ``name`` never goes down."""
    if name not in high_water or compare_versions(version, high_water[name]) > 0:
        high_water[name] = version


class _Suspended(Exception):
    """The job cannot go on now (the network is down); it stays resumable."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Agent:
    """Installs signed bundle updates into A/B slots; see the module docstring.

    ``public_keys``: the keys this device trusts. ``health_gate``: judges an activated
    slot (default :func:`ota.health.reference_gate`). ``progress(done, total)``: called
    while downloading.
    """

    def __init__(
        self,
        root: Path,
        public_keys: Sequence[Ed25519PublicKey],
        device: Device,
        health_gate: HealthGate | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.layout = Layout(Path(root))
        self.public_keys = list(public_keys)
        self.device = device
        self.health_gate: HealthGate = health_gate or reference_gate
        self.progress = progress
        # Called with :meth:`status` after every state change (job states for MQTT).
        self.on_change: Callable[[dict[str, Any]], None] | None = None
        self._state: dict[str, Any] | None = None
        self._downloaded: tuple[int, int | None] | None = None
        self._steps: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
            "download": self._download,
            "verify": self._verify,
            "install": self._install,
            "activate": self._activate,
            "health": self._health,
            "commit": self._commit,
            "rollback": self._rollback,
        }

    # -- public API -----------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """The state of the job this agent is running, or ``idle``."""
        job = (self._state or {}).get("job")
        return "idle" if not job or job["state"] in TERMINAL else str(job["state"])

    @property
    def active_dir(self) -> Path:
        """The bundles directory the daemon should load (a link to the active slot)."""
        return self.layout.active

    def initialize(self, factory_dir: Path) -> bool:
        """Fill slot A from the factory bundles and point ``active`` at it, once.

        Returns False when the slots already exist. Safe to interrupt: the set is built
        in a staging directory and renamed into place before anything points at it.
        """
        with self._locked():
            active = self.layout.active_slot()
            if active is not None:
                state = self._load()
                if state["committed_slot"] is None:  # state.json lost: adopt what runs
                    self._commit_slot(state, active)
                return False
            staging = self.layout.slots_dir / ".a.init"
            fsio.make_dir(self.layout.slots_dir)
            fsio.remove_tree(staging)
            staging.mkdir()
            for bundle in bundle_dirs(Path(factory_dir)):
                fsio.copy_flat_dir(bundle, staging / bundle.name)
            problems = hash_gate(staging)
            if problems:
                fsio.remove_tree(staging)
                raise AgentError(f"factory bundles do not verify: {'; '.join(problems)}")
            fsio.remove_tree(self.layout.slot("a"))
            fsio.rename(staging, self.layout.slot("a"))
            self._commit_slot(self._load(), "a")
            self.layout.point_active("a")
            log.info("OTA slots initialized from %s", factory_dir)
            return True

    def install(self, source: str, job_id: str | None = None) -> dict[str, Any]:
        """Run a new job for ``source`` (path or URL) to its end; returns :meth:`status`.

        A refused or rolled-back update is a result, not an exception; AgentError means
        the job could not start (not initialized, another job unfinished, locked).
        """
        with self._locked():
            state = self._load()
            if state["committed_slot"] is None or self.layout.active_slot() is None:
                raise AgentError(f"{self.layout.root}: no slots yet; initialize first")
            job = state["job"]
            if job is not None and job["state"] not in TERMINAL:
                raise AgentError(
                    f"job {job['id']} is in state {job['state']}: resume or abort it first"
                )
            state["job"] = {
                "id": job_id or uuid.uuid4().hex[:12],
                "source": str(source),
                "state": "download",
                "result": None,
                "error": None,
                "reason": None,
                "bundle": None,
                "version": None,
                "key_id": None,
                "size": None,
                "from_slot": None,
                "to_slot": None,
                "started": _now(),
                "updated": _now(),
            }
            self._save(state)
            log.info("OTA job %s: %s", state["job"]["id"], source)
            self._run(state)
        return self.status()

    def resume(self) -> dict[str, Any]:
        """Finish whatever job a previous run left unfinished; returns :meth:`status`."""
        with self._locked():
            state = self._load()
            job = state["job"]
            fsio.remove_tree(self.layout.tmp)
            if job is not None and job["state"] not in TERMINAL:
                log.info("OTA job %s: resuming in state %s", job["id"], job["state"])
                self._run(state)
            else:
                self._cleanup(job)
                self._repair_pointer(state)
        return self.status()

    def note_start(self, limit: int = START_LIMIT) -> dict[str, Any]:
        """Count a daemon start while a job waits between activation and commit.

        Called by the daemon before it loads the active slot. Models that crash the
        daemon (a segfaulting runtime, a model too big for memory) never let a health
        gate finish; after ``limit`` such starts the new slot is rolled back before it
        is loaded again, so a crash loop ends on the old models.
        """
        with self._locked():
            state = self._load()
            job = state["job"]
            if job is not None and job["state"] in ("activate", "health"):
                job["starts"] = int(job.get("starts") or 0) + 1
                self._save(state)
                if job["starts"] > limit:
                    reason = f"the daemon started {limit} times on the new models without "
                    reason += "passing the health gate"
                    self._transition(state, "rollback", reason=reason, error="CrashLoop")
                    self._run(state)
        return self.status()

    def abort(self, reason: str = "aborted by the operator") -> dict[str, Any]:
        """End an unfinished job that has not switched slots yet."""
        with self._locked():
            state = self._load()
            job = state["job"]
            if job is None or job["state"] in TERMINAL:
                raise AgentError("no unfinished job to abort")
            if job["state"] not in ABORTABLE:
                raise AgentError(f"job {job['id']} is in state {job['state']}: resume it")
            self._finish(state, "failed", "failed", error="Aborted", reason=reason)
        return self.status()

    def status(self) -> dict[str, Any]:
        """A JSON-ready picture for the fleet layer: job, progress, slots, versions."""
        state = self.layout.load_state()
        job = dict(state["job"]) if state["job"] else None
        if job is not None:
            job["progress"] = self._progress_of(job)
        phase = "idle" if job is None or job["state"] in TERMINAL else job["state"]
        return {
            "state": phase,
            "job": job,
            "active_slot": self.layout.active_slot(),
            "committed_slot": state["committed_slot"],
            "fallback_slot": state["fallback_slot"],
            "slots": {s: slot_versions(self.layout.slot(s)) for s in ("a", "b")},
            "high_water": state["high_water"],
        }

    # -- machinery ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fsio.make_dir(self.layout.root)
        fd = os.open(self.layout.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AgentError(f"another update agent holds {self.layout.lock_file}") from None
            yield
        finally:
            os.close(fd)

    def _load(self) -> dict[str, Any]:
        self._state = self.layout.load_state()
        return self._state

    def _save(self, state: dict[str, Any]) -> None:
        self.layout.save_state(state)
        self._state = state

    def _transition(self, state: dict[str, Any], to: str, **fields: Any) -> None:
        job = state["job"]
        log.info("OTA job %s: %s -> %s", job["id"], job["state"], to)
        job.update(state=to, error=None, updated=_now())
        job.update(fields)
        self._save(state)
        self._announce()

    def _announce(self) -> None:
        """Tell ``on_change`` (the fleet's job states); its failure is not the job's."""
        if self.on_change is None:
            return
        try:
            self.on_change(self.status())
        except Exception:
            log.exception("OTA status listener failed")

    def _finish(self, state: dict[str, Any], to: str, result: str, **fields: Any) -> None:
        self._transition(state, to, result=result, **fields)
        if to != "done":
            log.warning("OTA job %s %s: %s", state["job"]["id"], result, state["job"]["reason"])
        self._cleanup(state["job"])

    def _fail(self, state: dict[str, Any], exc: Exception) -> None:
        self._finish(state, "failed", "failed", error=type(exc).__name__, reason=str(exc))

    def _run(self, state: dict[str, Any]) -> None:
        job = state["job"]
        while job["state"] not in TERMINAL:
            try:
                self._steps[job["state"]](state, job)
            except _Suspended:
                return

    def _update_file(self, job: dict[str, Any]) -> Path:
        return self.layout.downloads / f"{job['id']}.update"

    def _partial_file(self, job: dict[str, Any]) -> Path:
        return self.layout.downloads / f"{job['id']}.partial"

    def _cleanup(self, job: dict[str, Any] | None) -> None:
        if job is not None:
            fsio.remove_tree(self._partial_file(job))
            fsio.remove_tree(self._update_file(job))
        fsio.remove_tree(self.layout.tmp)

    def _commit_slot(self, state: dict[str, Any], slot: str) -> None:
        """Record ``slot`` as committed and raise the high-water marks to its versions."""
        high_water = state["high_water"]
        for name, version in slot_versions(self.layout.slot(slot)).items():
            _raise_high_water(high_water, name, version)
        state["committed_slot"] = slot
        self._save(state)

    def _repair_pointer(self, state: dict[str, Any]) -> None:
        committed = state["committed_slot"]
        if committed is not None and self.layout.active_slot() != committed:
            log.warning("active pointer disagrees with the committed slot; restoring %s", committed)
            self.layout.point_active(committed)

    def _on_progress(self, done: int, total: int | None) -> None:
        self._downloaded = (done, total)
        if self.progress is not None:
            self.progress(done, total)

    def _progress_of(self, job: dict[str, Any]) -> dict[str, int | None]:
        if job.get("size") is not None:
            return {"done": job["size"], "total": job["size"]}
        if job["state"] != "download":
            return {"done": None, "total": None}
        if self._downloaded is not None:  # this process is downloading it
            return {"done": self._downloaded[0], "total": self._downloaded[1]}
        try:
            done = self._partial_file(job).stat().st_size
        except FileNotFoundError:
            done = 0
        return {"done": done, "total": None}

    # -- the states' work (each idempotent) -----------------------------------------------

    def _download(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        update = self._update_file(job)
        if not update.exists():
            fsio.make_dir(self.layout.downloads)
            partial = self._partial_file(job)
            try:
                fetch(job["source"], partial, self._on_progress)
            except DownloadError as exc:
                if not exc.retryable:
                    self._fail(state, exc)
                    return
                job.update(error=type(exc).__name__, reason=str(exc), updated=_now())
                self._save(state)
                log.warning("OTA job %s: %s (resume to retry)", job["id"], exc)
                raise _Suspended from None
            fsio.rename(partial, update)
        self._transition(state, "verify", size=update.stat().st_size)

    def _verify(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        try:
            fsio.make_dir(self.layout.tmp)
            update = signing.verify(
                self._update_file(job), self.public_keys, work_dir=self.layout.tmp
            )
            check_compatible(update.manifest, update.boards, self.device)
            installed = state["high_water"].get(update.name)
            order = 1 if installed is None else compare_versions(update.version, installed)
            if order < 0:
                raise DowngradeError(
                    f"{update.name} {update.version} is older than the installed {installed}"
                )
        except UpdateError as exc:
            self._fail(state, exc)
            return
        fields = {"bundle": update.name, "version": update.version, "key_id": update.key_id}
        if order == 0:
            self._finish(state, "done", "already_installed", **fields)
            return
        source = state["committed_slot"]
        target = other_slot(source)
        if state["fallback_slot"] == target:
            state["fallback_slot"] = None  # about to be overwritten; recorded first
        self._transition(state, "install", from_slot=source, to_slot=target, **fields)

    def _install(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        source, target = job["from_slot"], job["to_slot"]
        if self.layout.active_slot() == target:
            self._fail(state, UpdateError(f"refusing to overwrite the active slot {target}"))
            return
        slot = self.layout.slot(target)
        fsio.remove_tree(slot)
        fsio.make_dir(slot)
        for bundle in bundle_dirs(self.layout.slot(source)):
            if bundle.name != job["bundle"]:
                fsio.copy_flat_dir(bundle, slot / bundle.name)
        fsio.make_dir(self.layout.tmp)
        try:
            signing.verify(
                self._update_file(job),
                self.public_keys,
                extract_to=slot / job["bundle"],
                work_dir=self.layout.tmp,
            )
        except UpdateError as exc:
            self._fail(state, exc)
            return
        problems = hash_gate(slot)
        if problems:
            self._fail(state, UpdateError("installed slot does not verify: " + "; ".join(problems)))
            return
        fsio.fsync_dir(slot)
        fsio.fsync_dir(self.layout.slots_dir)
        self._transition(state, "activate")

    def _activate(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        self.layout.point_active(job["to_slot"])
        self._transition(state, "health")

    def _health(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        problems = run_gate(self.health_gate, self.layout.slot(job["to_slot"]))
        if not problems:
            self._transition(state, "commit")
            return
        reason = "health gate failed: " + "; ".join(problems)
        self._transition(state, "rollback", reason=reason, error="HealthGateFailed")

    def _commit(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        name, version = job["bundle"], job["version"]
        _raise_high_water(state["high_water"], name, version)
        state["committed_slot"], state["fallback_slot"] = job["to_slot"], job["from_slot"]
        self._finish(state, "done", "installed")
        log.info("OTA job %s: %s %s installed in slot %s", job["id"], name, version, job["to_slot"])

    def _rollback(self, state: dict[str, Any], job: dict[str, Any]) -> None:
        self.layout.point_active(job["from_slot"])
        self._finish(state, "rolled_back", "rolled_back", error=job["error"], reason=job["reason"])
