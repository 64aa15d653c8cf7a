"""An HTTP client with a cookie jar and the CSRF token, as a script would use the API."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from typing import Any

PASSWORD = "correct horse battery"


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )
        self.csrf = ""

    def raw(
        self,
        path: str,
        method: str = "GET",
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read(), dict(err.headers)

    def get(self, path: str) -> tuple[int, bytes, str]:
        code, body, headers = self.raw(path)
        return code, body, headers.get("Content-Type", "")

    def send(self, path: str, method: str, body: object, csrf: bool = True) -> tuple[int, Any]:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        headers = {"Content-Type": "application/json"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        code, raw, _ = self.raw(path, method, data, headers)
        return code, json.loads(raw)

    def log_in(self, password: str = PASSWORD) -> int:
        code, session = self.send("/api/session", "GET", b"")
        assert code == 200, session
        self.csrf = session["csrf"]
        code, session = self.send("/api/session", "POST", {"password": password})
        if code == 200:
            self.csrf = session["csrf"]  # a new session (and token) at login
        return code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are what the security tests look at: report them, do not follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def form_token(page: str | bytes) -> str:
    """The CSRF token a page's form carries."""
    text = page.decode() if isinstance(page, bytes) else page
    return text.split('name="csrf_token" value="')[1].split('"')[0]
