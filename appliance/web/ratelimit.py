"""Slows password guessing: after a few failures a client must wait, doubling each time.

Checked before the password is hashed, so a guesser that ignores the wait costs neither
a guess nor the ~0.1 s of scrypt. A global budget bounds guessing spread over many
addresses on the LAN.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

FORGET_S = 900.0  # a quarter of an hour without failures starts the count afresh


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0
    last: float = 0.0


class LoginLimiter:
    def __init__(
        self,
        free: int = 3,
        base_s: float = 1.0,
        max_s: float = 300.0,
        global_free: int = 30,
    ) -> None:
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self.global_free = global_free
        self._clients: dict[str, _Failures] = {}
        self._all = _Failures()
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next attempt (0: go ahead)."""
        now = time.monotonic()
        with self._lock:
            mine = self._clients.get(client, _Failures())
            return max(0.0, mine.until - now, self._all.until - now)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._clients) > 10_000:  # bounded memory under an address sweep
                self._clients.clear()
            mine = self._clients.setdefault(client, _Failures())
            for record, free in ((mine, self.free), (self._all, self.global_free)):
                if now - record.last > FORGET_S:  # an old burst must not lock out for good
                    record.count = 0
                record.count += 1
                record.last = now
                if record.count >= free:
                    delay = min(self.max_s, self.base_s * 2 ** (record.count - free))
                    record.until = now + delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)
