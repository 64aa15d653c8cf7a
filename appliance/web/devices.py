"""Known devices: browsers that set the password or logged in before.

At each successful login (or first-boot setup) the browser gets a long-lived cookie,
signed under a key derived from the stored password hash. It logs nobody in: it only
puts the browser's next login on the reserved path of the login limiter (its own
hashing slot and its own failure count, ratelimit.py), which strangers flooding the
login cannot spend. A new password changes the key, so every earlier cookie is dead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

COOKIE = "appliance_device"
LIFETIME_S = 400 * 24 * 3600  # the longest browsers keep a cookie (Chromium caps at 400 d)
_VALUE = re.compile(r"^([A-Za-z0-9_-]{16})\.([0-9]{1,12})\.([A-Za-z0-9_-]{22,64})$")


class KnownDevices:
    """``key`` gives the current signing key, or None while there is no password."""

    def __init__(self, key: Callable[[], bytes | None]) -> None:
        self._key = key

    def issue(self) -> str | None:
        key = self._key()
        if key is None:
            return None
        device = secrets.token_urlsafe(12)
        issued = str(int(time.time()))
        return f"{device}.{issued}.{_mac(key, device, issued)}"

    def recognise(self, value: str | None) -> str | None:
        """The device id of a valid, unexpired cookie; None for anything else."""
        if not value or len(value) > 128:
            return None
        match = _VALUE.match(value)
        key = self._key()
        if match is None or key is None:
            return None
        device, issued, mac = match.groups()
        if not hmac.compare_digest(mac, _mac(key, device, issued)):
            return None
        age = time.time() - int(issued)
        return device if -300 <= age <= LIFETIME_S else None  # 5 min of clock skew


def _mac(key: bytes, device: str, issued: str) -> str:
    digest = hmac.new(key, f"{device}.{issued}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
