"""Server-side sessions: the cookie holds only a random id, so logging out, a new
password or a restart really ends a session (a signed cookie would outlive all three).

Anonymous sessions (they only carry the login and setup forms' CSRF token) are not
stored: their token is an HMAC of the cookie's id under a key of this process. Anyone
can create them, so storing them would let a flood of page loads push the owner's one
out and break their login form; derived, they cost nothing and cannot be evicted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "appliance_sid"
LIFETIME_S = 12 * 3600
MAX_LOGGED_IN = 16
_SID = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


@dataclass
class Session:
    sid: str
    csrf: str
    logged_in: bool = False
    expires: float = field(default_factory=lambda: time.monotonic() + LIFETIME_S)
    new: bool = True  # the cookie still has to be sent


class SessionStore:
    def __init__(self, lifetime_s: float = LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)

    def get(self, sid: str | None) -> Session | None:
        """The logged-in session of this cookie, else the anonymous one it names."""
        if not sid or not _SID.match(sid):
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[sid]
                session = None
        if session is not None:
            return session
        return Session(sid=sid, csrf=self._anonymous_token(sid), new=False)

    def anonymous(self) -> Session:
        sid = secrets.token_urlsafe(32)
        return Session(sid=sid, csrf=self._anonymous_token(sid))

    def _anonymous_token(self, sid: str) -> str:
        digest = hmac.new(self._key, sid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def log_in(self, old: Session | None) -> Session:
        """A fresh id at login: an id planted before it (session fixation) is worthless."""
        if old is not None:
            self.drop(old.sid)
        return self._add()

    def drop(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def drop_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def _add(self) -> Session:
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            logged_in=True,
            expires=time.monotonic() + self.lifetime_s,
        )
        with self._lock:
            same = list(self._sessions.values())
            excess = max(0, len(same) - MAX_LOGGED_IN + 1)
            for oldest in sorted(same, key=lambda s: s.expires)[:excess]:
                del self._sessions[oldest.sid]
            self._sessions[session.sid] = session
        return session
