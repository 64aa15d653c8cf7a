"""Slows password guessing: after a few failures a client must wait, doubling each time.

An attempt is reserved (counted as a failure) before the password is hashed and given
back on success, in one locked step: parallel requests cannot slip extra guesses past
the count. A client inside its wait is answered before any hashing, so ignoring the
wait costs neither a guess nor the ~0.1 s and 32 MiB of scrypt. At most ``hashing``
guesses are hashed at once, whoever sends them: a flood of logins is answered "busy"
instead of exhausting the camera's memory, and nobody's lockout grows from it (a
shared, growing lockout would let anyone lock the owner out).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FORGET_S = 900.0  # a quarter of an hour without failures starts the count afresh
HASHING = 2  # scrypt at n=2^15 takes 32 MiB: two at a time on a small camera


class TooSoon(Exception):
    """This attempt may not run now; ``wait_s`` says when to retry."""

    def __init__(self, wait_s: float, why: str) -> None:
        super().__init__(why)
        self.wait_s = wait_s


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0
    last: float = 0.0


class LoginLimiter:
    def __init__(
        self, free: int = 3, base_s: float = 1.0, max_s: float = 300.0, hashing: int = HASHING
    ) -> None:
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self._clients: dict[str, _Failures] = {}
        self._lock = threading.Lock()
        self._hashing = threading.BoundedSemaphore(hashing)

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next attempt (0: go ahead)."""
        now = time.monotonic()
        with self._lock:
            mine = self._clients.get(client, _Failures())
            return max(0.0, mine.until - now)

    def check(self, client: str, secret_ok: Callable[[], bool]) -> bool:
        """Run one password (or setup code) check for ``client`` under the limits.

        Raises TooSoon without running it when the client must wait or the camera is
        already hashing as many guesses as it will.
        """
        if not self._hashing.acquire(blocking=False):
            raise TooSoon(1.0, "the camera is busy checking other logins; try again")
        try:
            self._reserve(client)
            ok = secret_ok()
        finally:
            self._hashing.release()
        if ok:
            self.succeeded(client)
        return ok

    def _reserve(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._clients) > 10_000:  # bounded memory under an address sweep
                self._clients.clear()
            mine = self._clients.setdefault(client, _Failures())
            if mine.until > now:
                wait = mine.until - now
                raise TooSoon(wait, f"too many failed attempts; try again in {wait:.0f} s")
            if now - mine.last > FORGET_S:  # an old burst must not lock out for good
                mine.count = 0
            mine.count += 1
            mine.last = now
            if mine.count >= self.free:
                mine.until = now + min(self.max_s, self.base_s * 2 ** (mine.count - self.free))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)
