"""First-boot setup, login and logout: pages and their /api/session twin."""

from __future__ import annotations

import logging
from typing import Any, cast

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue

from appliance.web.auth import PasswordNotSaved, password_problem
from appliance.web.common import json_body
from appliance.web.ratelimit import LoginLimiter, TooSoon
from appliance.web.security import (
    auth_store,
    current_session,
    ensure_session,
    known_device,
    known_devices,
    safe_next,
    sessions,
)

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)


def _limiter() -> LoginLimiter:
    return cast(LoginLimiter, current_app.config["LIMITER"])


def _client() -> str:
    return request.remote_addr or "?"


def _log_in() -> None:
    g.session = sessions().log_in(current_session())
    # This browser is known from now on: its next login has a path strangers cannot
    # spend (ratelimit.py). A new cookie each time: the key follows the password.
    g.device_cookie = known_devices().issue()


def _caller() -> str | None:
    """The reserved-path identity of this request: a known device, or else a logged-in
    session confirming its password (it logged in before, so it is not a stranger)."""
    device = known_device()
    if device is not None:
        return device
    session = current_session()
    return f"session:{session.sid}" if session is not None and session.logged_in else None


def _attempt(password: str) -> str | None:
    """Why the password is refused, or None (logged in). Raises TooSoon."""
    if _limiter().check(_client(), lambda: auth_store().verify(password), known=_caller()):
        _log_in()
        return None
    log.warning("web: failed login from %s", _client())
    return "wrong password"


def _retry_after(wait_s: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(wait_s)))}


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if not auth_store().provisioned:
        return redirect("/setup")
    next_url = safe_next(request.values.get("next"))
    error = None
    status = 200
    headers: dict[str, str] = {}
    if request.method == "POST":
        try:
            error = _attempt(request.form.get("password", ""))
        except TooSoon as refused:
            error, status, headers = str(refused), 429, _retry_after(refused.wait_s)
        else:
            if error is None:
                return redirect(next_url)
            status = 401
    ensure_session()
    return render_template("login.html", error=error, next=next_url), status, headers


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> ResponseReturnValue:
    store = auth_store()
    if store.provisioned:
        return redirect("/login")
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        errors, status = _set_first_password(request.form)
        if not errors:
            return redirect("/")
    ensure_session()
    return render_template("setup.html", errors=errors), status


def _set_first_password(form: Any) -> tuple[dict[str, str], int]:
    store = auth_store()
    try:
        right = _limiter().check(_client(), lambda: store.check_setup_code(form.get("code", "")))
    except TooSoon as refused:
        return {"code": str(refused)}, 429
    if not right:
        log.warning("web: wrong setup code from %s", _client())
        return {"code": "wrong setup code (it is printed in the daemon's log)"}, 401
    password = form.get("password", "")
    problem = password_problem(password)
    if problem:
        return {"password": problem}, 400
    if password != form.get("confirm", ""):
        return {"confirm": "the two passwords differ"}, 400
    try:
        store.set_password(password)
    except PasswordNotSaved as exc:  # a full disk: setup stays open, nothing half-done
        return {"password": str(exc)}, 500
    _log_in()
    return {}, 200


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    _log_out()
    return redirect("/login")


def _log_out() -> None:
    session = current_session()
    if session is not None:
        sessions().drop(session.sid)
    g.session = None
    g.forget_cookie = True


@bp.route("/api/session", methods=["GET", "POST", "DELETE"])
def api_session() -> ResponseReturnValue:
    """For scripts: GET gives the CSRF token to send back as X-CSRF-Token (another site
    cannot read it: no CORS), POST {"password"} logs in, DELETE logs out."""
    store = auth_store()
    if request.method == "POST":
        if not store.provisioned:
            return jsonify(errors=["set the password first (/setup)"]), 409
        try:
            document = json_body()
        except ValueError:
            document = None
        password = document.get("password") if isinstance(document, dict) else None
        try:
            refused = _attempt(password if isinstance(password, str) else "")
        except TooSoon as too_soon:
            return jsonify(errors=[str(too_soon)]), 429, _retry_after(too_soon.wait_s)
        if refused is not None:
            return jsonify(errors=["wrong password"]), 401
    elif request.method == "DELETE":
        _log_out()
        return jsonify(logged_in=False)
    session = ensure_session()
    return jsonify(
        logged_in=session.logged_in, setup_required=not store.provisioned, csrf=session.csrf
    )


@bp.post("/password")
def change_password() -> ResponseReturnValue:
    """Behind the login, and the current password again: a session left open on a
    shared screen must not be enough to lock the owner out."""
    form = request.form
    store = auth_store()
    try:
        right = _limiter().check(
            _client(), lambda: store.verify(form.get("current", "")), known=_caller()
        )
    except TooSoon as refused:
        return _password_page(429, str(refused))
    if not right:
        return _password_page(401, "current password: wrong")
    new = form.get("password", "")
    problem = password_problem(new)
    if problem:
        return _password_page(400, f"new password: {problem}")
    if new != form.get("confirm", ""):
        return _password_page(400, "new password: the two differ")
    try:
        store.set_password(new)
    except PasswordNotSaved as exc:  # a full disk: the old password and sessions stay
        return _password_page(500, str(exc))
    sessions().drop_all()  # every browser logged in with the old password is out
    _log_in()  # this one goes on, with a new session
    return _password_page(200, None)


def _password_page(status: int, error: str | None) -> ResponseReturnValue:
    done = "password" if error is None else None
    return render_template("actions.html", page="actions", done=done, error=error), status
