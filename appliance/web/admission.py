"""What the server decides from a request's first line and cookies, before the app runs
and before any of the body is read: how big a body it may send, and whether it is the
owner's (a logged-in session or a known device), whose requests are served first."""

from __future__ import annotations

from werkzeug.http import parse_cookie

from appliance.web.devices import COOKIE as DEVICE_COOKIE
from appliance.web.devices import KnownDevices
from appliance.web.sessions import COOKIE as SESSION_COOKIE
from appliance.web.sessions import SessionStore

# A config document or a login form is a few hundred bytes (Flask's limit: the app
# answers past it with its own 413).
MAX_BODY = 64 * 1024
# What the server reads at most for an ordinary request: above MAX_BODY, so Flask
# answers the moderately oversized with a proper (JSON) 413; past it the server answers.
MAX_REQUEST = 4 * MAX_BODY
# A signed model bundle: the super-resolution and mesh networks are megabytes.
MAX_UPLOAD = 1024 * 1024 * 1024
# Routes that take an upload, and only from a logged-in session: a stranger cannot make
# the camera spool a gigabyte to disk before the login wall even sees the request.
UPLOADS = {("POST", "/api/models")}


class Admission:
    def __init__(
        self, sessions: SessionStore | None = None, devices: KnownDevices | None = None
    ) -> None:
        self._sessions = sessions
        self._devices = devices

    largest_body = MAX_UPLOAD

    def body_limit(self, method: str, path: str, cookie_header: str) -> int:
        if (method, path) in UPLOADS and self._logged_in(cookie_header):
            return MAX_UPLOAD
        return MAX_REQUEST

    def is_owner(self, cookie_header: str) -> bool:
        if not cookie_header:
            return False
        if self._logged_in(cookie_header):
            return True
        device = parse_cookie(cookie_header).get(DEVICE_COOKIE)
        return self._devices is not None and self._devices.recognise(device) is not None

    def _logged_in(self, cookie_header: str) -> bool:
        if self._sessions is None or not cookie_header:
            return False
        session = self._sessions.get(parse_cookie(cookie_header).get(SESSION_COOKIE))
        return session is not None and session.logged_in
