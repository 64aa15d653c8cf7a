"""Helpers every blueprint uses."""

from __future__ import annotations

from typing import Any, cast

from flask import current_app

from appliance.web.app import DaemonView


def daemon() -> DaemonView:
    return cast(DaemonView, current_app.config["DAEMON"])


def optional(name: str) -> Any:
    """A part the daemon may not have (see DaemonView)."""
    return getattr(daemon(), name, None)
