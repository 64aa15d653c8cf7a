"""Helpers every blueprint uses."""

from __future__ import annotations

from typing import Any, cast

from flask import current_app, request

from appliance.untrusted import load_json, preview
from appliance.web.admission import MAX_BODY
from appliance.web.app import DaemonView

MAX_JSON_DEPTH = 16  # a config document nests 3 deep; a list of addresses 4
MAX_ERROR = 200  # characters of one error line shown back (API and pages)


def daemon() -> DaemonView:
    return cast(DaemonView, current_app.config["DAEMON"])


def optional(name: str) -> Any:
    """A part the daemon may not have (see DaemonView)."""
    return getattr(daemon(), name, None)


def json_body() -> Any:
    """The request's JSON document, size and depth checked before it is parsed
    (ValueError says why it is refused)."""
    if not request.is_json:
        raise ValueError("expected a JSON object (Content-Type: application/json)")
    return load_json(request.get_data(), max_bytes=MAX_BODY, max_depth=MAX_JSON_DEPTH, what="JSON")


def brief(error: str) -> str:
    """An error line as shown back: whole when short, else its start and a count, so
    a megabyte value (or key) is never echoed into the page or the API's answer."""
    if len(error) <= MAX_ERROR:
        return error
    path, sep, message = error.partition(": ")
    if sep and len(path) <= MAX_ERROR // 2:
        return f"{path}: {_cut(message, MAX_ERROR - len(path))}"
    return _cut(error, MAX_ERROR)


def _cut(text: str, limit: int) -> str:
    shown = preview(text, limit)  # repr, cut: control characters come out escaped
    return shown[1:] if shown[:1] in "'\"" else shown
