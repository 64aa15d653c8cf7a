"""Which source feeds the pipeline: the best one that works, re-chosen as devices come and go.

Candidates are ranked (for ``auto``: CSI sensor, then USB cameras, then the
fallbacks). The selector runs the best candidate that opens; when it fails or is
unplugged it falls to the next one, and when a better one reappears (a hot-plug
event, or the periodic re-check where udev is not available) it climbs back.

The capture thread owns ``current``; the hot-plug thread only reports events, which
the capture thread acts on between two reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.capture.base import Source, SourceError

log = logging.getLogger(__name__)

SourceFactory = Callable[[str], Source]
Candidates = Callable[[], list[str]]

RETRY_S = 2.0  # a failed candidate is not retried sooner, unless a device event says so
# CSI sensors are not hot-pluggable, and opening Argus for a missing sensor takes
# seconds: one that fails to *open* is tried again only after a reconfiguration.
NOT_REOPENED = ("csi://",)


class SourceSelector:
    def __init__(
        self,
        candidates: Candidates,
        factory: SourceFactory,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._candidates = candidates
        self._factory = factory
        self._retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()  # guards the three fields below
        self._failed_at: dict[str, float] = {}
        self._never_again: set[str] = set()
        self._removed: set[str] = set()  # device nodes udev reported gone
        self._errors: dict[str, str] = {}  # why each candidate last failed
        self._ranked: list[str] = []  # the candidates as last listed by the capture thread
        self._devices_changed = threading.Event()
        self._last_check = clock()
        self.current: Source | None = None
        self.switches = 0
        self.last_error = ""

    # -- called from the capture thread -------------------------------------------------

    def ensure(self) -> Source:
        """The running source, opening the best available one if there is none."""
        with self._lock:
            removed, self._removed = self._removed, set()
        if self.current is not None and any(self.current.uri.endswith(p) for p in removed):
            self.fail("device removed")
        if self.current is None:
            self.current = self._open_best(self._rank())
            self.switches += 1
        return self.current

    def fail(self, reason: str) -> None:
        """The current source stopped working: close it and let ``ensure`` pick the next."""
        if self.current is None:
            return
        uri = self.current.uri
        self.last_error = f"{uri}: {reason}"
        log.warning("source %s failed (%s); falling back", uri, reason)
        self._close_current()
        self._mark_failed(uri)
        with self._lock:
            self._errors[uri] = reason

    def fallen_back(self) -> str | None:
        """Why the running source is not the first choice, or None when it is (``auto``
        with no camera at all runs its fallback by choice: not a fall-back)."""
        current = self.current
        candidates = self._ranked  # listing them again (auto: every V4L2 node) is not ours
        if current is None or not candidates or current.uri == candidates[0]:
            return None
        preferred = candidates[0]
        with self._lock:
            reason = self._errors.get(preferred, "not opened yet")
        return f"source {preferred} failed ({reason}); showing {current.uri}"

    def maybe_upgrade(self) -> bool:
        """Switch to a better-ranked candidate if one has become available."""
        now = self._clock()
        if not self._devices_changed.is_set() and now - self._last_check < self._retry_s:
            return False
        self._devices_changed.clear()
        self._last_check = now
        candidates = self._rank()
        if self.current is None or self.current.uri not in candidates:
            better = candidates
        else:
            better = candidates[: candidates.index(self.current.uri)]
        better = [uri for uri in better if self._may_try(uri, now)]
        if not better:
            return False
        try:
            source = self._open_best(better)
        except SourceError:
            return False
        log.info("switching to %s", source.uri)
        self._close_current()
        self.current = source
        self.switches += 1
        return True

    def reset(self, candidates: Candidates) -> None:
        """New configuration: forget failures and choose again from ``candidates``."""
        self._candidates = candidates
        with self._lock:
            self._failed_at.clear()
            self._never_again.clear()
        self._close_current()

    def close(self) -> None:
        self._close_current()

    # -- called from the hot-plug thread ------------------------------------------------

    def device_added(self, path: str) -> None:
        with self._lock:
            self._failed_at = {u: t for u, t in self._failed_at.items() if not u.endswith(path)}
        self._devices_changed.set()

    def device_removed(self, path: str) -> None:
        # A USB camera goes as two nodes (video + metadata): keep every one reported.
        with self._lock:
            self._removed.add(path)
        self._devices_changed.set()

    # -- internals -------------------------------------------------------------------

    def _rank(self) -> list[str]:
        self._ranked = self._candidates()
        return self._ranked

    def _mark_failed(self, uri: str, opening: bool = False) -> None:
        with self._lock:
            self._failed_at[uri] = self._clock()
            if opening and uri.startswith(NOT_REOPENED):
                self._never_again.add(uri)

    def _may_try(self, uri: str, now: float) -> bool:
        with self._lock:
            if uri in self._never_again:
                return False
            failed = self._failed_at.get(uri)
        return failed is None or now - failed >= self._retry_s

    def _open_best(self, candidates: list[str]) -> Source:
        reasons = []
        now = self._clock()
        for uri in candidates:
            # The last candidate is the last resort: always worth another try.
            if not self._may_try(uri, now) and uri != candidates[-1]:
                reasons.append(f"{uri}: failed recently")
                continue
            try:
                source = self._factory(uri)
                source.open()
            except (SourceError, ValueError, OSError) as exc:
                self._mark_failed(uri, opening=True)
                reasons.append(f"{uri}: {exc}")
                with self._lock:
                    new = self._errors.get(uri) != str(exc)
                    self._errors[uri] = str(exc)
                # said once per reason: retried every few seconds, it must not flood
                log.log(logging.WARNING if new else logging.DEBUG, "cannot open %s: %s", uri, exc)
                continue
            log.info("capturing from %s (%dx%d @ %.3g fps)", uri, *source.size, source.fps)
            with self._lock:
                self._failed_at.pop(uri, None)
                self._errors.pop(uri, None)
            return source
        raise SourceError("no source could be opened: " + "; ".join(reasons))

    def _close_current(self) -> None:
        if self.current is not None:
            try:
                self.current.close()
            except Exception:
                log.exception("closing %s failed", self.current.uri)
            self.current = None
