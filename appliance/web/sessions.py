"""Server-side sessions: the cookie holds only a random id, so logging out, a new
password or a restart really ends a session (a signed cookie would outlive all three)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "appliance_sid"
LIFETIME_S = 12 * 3600
MAX_LOGGED_IN = 16
# Anonymous sessions exist to carry the login form's CSRF token; anyone can make them,
# so they are capped separately and can never push out a logged-in one.
MAX_ANONYMOUS = 64


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

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[sid]
                return None
            return session

    def anonymous(self) -> Session:
        return self._add(logged_in=False)

    def log_in(self, old: Session | None) -> Session:
        """A fresh id at login: an id planted before it (session fixation) is worthless."""
        if old is not None:
            self.drop(old.sid)
        return self._add(logged_in=True)

    def drop(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def drop_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def _add(self, logged_in: bool) -> Session:
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            logged_in=logged_in,
            expires=time.monotonic() + self.lifetime_s,
        )
        with self._lock:
            same = [s for s in self._sessions.values() if s.logged_in == logged_in]
            limit = MAX_LOGGED_IN if logged_in else MAX_ANONYMOUS
            for oldest in sorted(same, key=lambda s: s.expires)[: max(0, len(same) - limit + 1)]:
                del self._sessions[oldest.sid]
            self._sessions[session.sid] = session
        return session
