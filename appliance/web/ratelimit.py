"""Slows password guessing without letting strangers lock the owner out.

Two paths, each with its own budgets, so that what strangers spend is never the owner's:

- **Strangers** (no known-device cookie, not logged in): per source (an IPv4 address,
  an IPv6 /64) a few free tries, then a wait doubling with each failure; on top, one
  budget for all strangers together: a token bucket of guesses (``stranger_rate`` a
  second, ``stranger_burst`` at once) and ``hashing`` scrypt runs at a time. An address
  sweep (200 loopback addresses, a /64 of IPv6) therefore guesses at ``stranger_rate``
  in total and costs the camera a bounded share of one core, and the flood is answered
  429 "busy" before any hashing.
- **Known devices** (a browser that logged in or set the password before: a signed
  cookie, devices.py; or a logged-in session confirming its password): first claim on
  the one scrypt slot (a stranger takes it only when it is free and no known device
  waits), and a failure count per device. The owner's browser logs in during the flood
  within one stranger's hash; one scrypt at a time keeps the flood's memory at 32 MiB.

An attempt is reserved (counted as a failure, its token taken) before the password is
hashed and given back on success, in one locked step: parallel requests cannot slip
extra guesses past the count. A client inside its wait is answered before any hashing.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FORGET_S = 900.0  # a quarter of an hour without failures starts the count afresh
STRANGER_RATE = 2.0  # guesses a second from all strangers together (~20% of one core)
STRANGER_BURST = 10
KNOWN_WAIT_S = 2.0  # a known device waits this long for its slot rather than "busy"
MAX_TRACKED = 10_000  # sources remembered; bounded memory under an address sweep


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


class _Bucket:
    """Tokens refilled at ``rate`` a second, at most ``burst`` saved (caller locks)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def give_back(self) -> None:
        self.tokens = min(self.burst, self.tokens + 1.0)


def source_key(address: str) -> str:
    """Who a stranger is for the per-source count: an IPv6 host picks any address in
    its /64 at will, so the /64 counts as one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _HashSlot:
    """One scrypt at a time (n=2^15 takes 32 MiB and ~0.1 s of a core). A stranger takes
    it only when it is free and no known device is waiting; a known device waits for
    it, which is at most one stranger's hash."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._known_waiting = 0

    def try_stranger(self) -> bool:
        with self._changed:
            if self._busy or self._known_waiting:
                return False
            self._busy = True
            return True

    def wait_known(self, timeout: float) -> bool:
        with self._changed:
            self._known_waiting += 1
            try:
                free = self._changed.wait_for(lambda: not self._busy, timeout)
            finally:
                self._known_waiting -= 1
            if free:
                self._busy = True
            return free

    def release(self) -> None:
        with self._changed:
            self._busy = False
            self._changed.notify_all()


class LoginLimiter:
    def __init__(
        self,
        free: int = 3,
        base_s: float = 1.0,
        max_s: float = 300.0,
        stranger_rate: float = STRANGER_RATE,
        stranger_burst: int = STRANGER_BURST,
    ) -> None:
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self._clients: dict[str, _Failures] = {}
        self._lock = threading.Lock()
        self._hashing = _HashSlot()
        self._strangers = _Bucket(stranger_rate, stranger_burst)

    def wait_s(self, client: str, known: str | None = None) -> float:
        """Seconds ``client`` must still wait before its next attempt (0: go ahead)."""
        now = time.monotonic()
        with self._lock:
            mine = self._clients.get(self._key(client, known), _Failures())
            return max(0.0, mine.until - now)

    def check(self, client: str, secret_ok: Callable[[], bool], known: str | None = None) -> bool:
        """Run one password (or setup code) check for ``client`` (its address) under
        the limits; ``known``: the device id of a known device (its reserved path).

        Raises TooSoon without running it when the caller must wait, or when the
        strangers' budget is spent (or, for a known device, its slot stays taken).
        """
        stranger = known is None
        if stranger and not self._hashing.try_stranger():
            raise TooSoon(1.0, "the camera is busy checking other logins; try again")
        if not stranger and not self._hashing.wait_known(KNOWN_WAIT_S):
            raise TooSoon(1.0, "the camera is busy checking another login; try again")
        key = self._key(client, known)
        try:
            self._reserve(key, stranger)
            ok = secret_ok()
        finally:
            self._hashing.release()
        if ok:
            self._succeeded(key, stranger)
        return ok

    @staticmethod
    def _key(client: str, known: str | None) -> str:
        return f"device:{known}" if known is not None else source_key(client)

    def _reserve(self, key: str, stranger: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._clients) > MAX_TRACKED:
                self._forget_oldest()
            mine = self._clients.setdefault(key, _Failures())
            if mine.until > now:
                wait = mine.until - now
                raise TooSoon(wait, f"too many failed attempts; try again in {wait:.0f} s")
            if stranger:
                wait = self._strangers.take(now)
                if wait:
                    raise TooSoon(wait, "the camera is busy checking other logins; try again")
            if now - mine.last > FORGET_S:  # an old burst must not lock out for good
                mine.count = 0
            mine.count += 1
            mine.last = now
            if mine.count >= self.free:
                mine.until = now + min(self.max_s, self.base_s * 2 ** (mine.count - self.free))

    def _forget_oldest(self) -> None:
        """Drop the half least recently seen (caller locks): a sweep of fresh addresses
        evicts its own entries, not everyone's count at once."""
        by_age = sorted(self._clients.items(), key=lambda item: item[1].last)
        for key, _ in by_age[: len(by_age) // 2]:
            del self._clients[key]

    def _succeeded(self, key: str, stranger: bool) -> None:
        with self._lock:
            self._clients.pop(key, None)
            if stranger:
                self._strangers.give_back()  # a right password spent no guessing budget

    def succeeded(self, client: str, known: str | None = None) -> None:
        self._succeeded(self._key(client, known), stranger=False)
