"""Every request passes here: the Host check, the session, the login wall and CSRF.

The wall is deny-by-default: a view is public only when its endpoint is listed in
``PUBLIC``, so a route added later is behind the login without anyone remembering to.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from typing import Any, cast
from urllib.parse import quote, urlsplit

from flask import Flask, Response, abort, current_app, g, jsonify, redirect, request

from appliance.web.auth import AuthStore
from appliance.web.devices import COOKIE as DEVICE_COOKIE
from appliance.web.devices import LIFETIME_S as DEVICE_LIFETIME_S
from appliance.web.devices import KnownDevices
from appliance.web.sessions import COOKIE, Session, SessionStore

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
PUBLIC = {"auth.login", "auth.setup", "auth.api_session", "static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# No inline script or style anywhere: injected markup cannot run.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def sessions() -> SessionStore:
    return cast(SessionStore, current_app.config["SESSIONS"])


def auth_store() -> AuthStore:
    return cast(AuthStore, current_app.config["AUTH"])


def known_devices() -> KnownDevices:
    return cast(KnownDevices, current_app.config["DEVICES"])


def known_device() -> str | None:
    """The id of this browser when it logged in here before (devices.py), else None."""
    return known_devices().recognise(request.cookies.get(DEVICE_COOKIE))


def over_tls() -> bool:
    """Whether the browser reached us over TLS: the app was created for it
    (``https=True``), or the TLS proxy in front says so (X-Forwarded-Proto, which
    server.py takes for the scheme and nothing else)."""
    return bool(current_app.config["HTTPS"]) or request.scheme == "https"


def current_session() -> Session | None:
    return cast("Session | None", g.get("session"))


def ensure_session() -> Session:
    """The request's session, or a new anonymous one (it carries the form's token)."""
    session = current_session()
    if session is None:
        session = sessions().anonymous()
        g.session = session
    return session


def csrf_token() -> str:
    return ensure_session().csrf


def is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def own_names() -> set[str]:
    """The names this camera answers to besides its addresses: its host name, its
    fully qualified name and their mDNS (.local) forms."""
    names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    return names | {f"{name.split('.')[0]}.local" for name in names}


def host_name(host: str) -> str:
    """``Host`` without its port: ``[fe80::1]:8080`` -> ``fe80::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def known_host(host: str, names: set[str]) -> bool:
    """An address, or one of this camera's names: another name pointing here is a page
    elsewhere using DNS rebinding to reach the login form from inside the LAN."""
    name = host_name(host).lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in names


def install(app: Flask, loopback_only: bool) -> None:
    names = own_names()

    @app.before_request
    def _gate() -> Response | None:
        if loopback_only and request.host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
            # The server listens on loopback: any other Host name is DNS rebinding.
            abort(403, description="this page answers to localhost only")
        if not loopback_only and not known_host(request.host, names):
            abort(403, description="unknown host name; use the camera's address or name")
        g.session = sessions().get(request.cookies.get(COOKIE))
        if request.endpoint not in PUBLIC and request.endpoint is not None:
            refusal = _require_login()
            if refusal is not None:
                return refusal
        if request.method not in SAFE_METHODS:
            _check_csrf()
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        session = current_session()
        # Secure behind the TLS proxy: the cookie then never crosses the LAN in clear.
        # Without TLS it would never come back, so plain HTTP gets none.
        flags: dict[str, Any] = {
            "httponly": True,
            "samesite": "Strict",
            "secure": over_tls(),
            "path": "/",
        }
        if session is not None and session.new:
            session.new = False
            response.set_cookie(COOKIE, session.sid, max_age=int(sessions().lifetime_s), **flags)
        device = g.get("device_cookie")
        if device:
            response.set_cookie(DEVICE_COOKIE, device, max_age=DEVICE_LIFETIME_S, **flags)
        if g.get("forget_cookie"):
            response.delete_cookie(COOKIE, **flags)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
        # our own form posts, which the Origin check must refuse.
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _require_login() -> Response | None:
    session = current_session()
    if session is not None and session.logged_in:
        return None
    setup = not auth_store().provisioned
    if is_api():
        why = "set the password first (/setup)" if setup else "log in first"
        response = jsonify(errors=[why])
        response.status_code = 401
        return response
    target = "/setup" if setup else "/login"
    if request.method == "GET" and request.path not in ("/", ""):
        target += "?next=" + quote(request.full_path.rstrip("?"), safe="/?=&")
    return cast(Response, redirect(target))


def _check_csrf() -> None:
    """A token only this origin's pages can read, on every state-changing request; plus
    the Origin header when the browser sends one (a second, independent lock)."""
    origin = request.headers.get("Origin")
    scheme = "https" if over_tls() else request.scheme
    if origin is not None and origin != f"{scheme}://{request.host}":
        abort(403, description="cross-site request refused")
    session = current_session()
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        given = request.form.get(CSRF_FIELD)
    if session is None or not given or not hmac.compare_digest(given, session.csrf):
        abort(403, description="missing or wrong CSRF token; reload the page")


def safe_next(target: str | None) -> str:
    """Only a path on this site: ``next=//evil.example`` must not bounce the user away,
    nor a slash, a tab and another slash (browsers drop tabs and newlines from URLs)."""
    if not target or any(ord(c) < 0x20 or c in "\\\x7f" for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
