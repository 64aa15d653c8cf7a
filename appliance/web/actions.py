"""Device actions: restart and factory reset, each only with an explicit confirmation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from appliance.fleet.shadow import state_path
from appliance.web.common import daemon, json_body, optional
from appliance.web.security import auth_store, is_api, sessions

log = logging.getLogger(__name__)

bp = Blueprint("actions", __name__)


def restart() -> str | None:
    """Why the daemon cannot restart itself, or None once asked."""
    request_restart = optional("request_restart")
    if request_restart is None:
        return "this daemon cannot restart itself"
    request_restart("asked from the web page")
    return None


def factory_reset() -> str | None:
    """Forget the settings, the fleet link's state and the page's password, then restart:
    the camera comes back as shipped, with a new setup code on its console. Installed
    models stay (their slots are the update agent's; it can roll them back)."""
    path = daemon().config.path
    for stale in (path, state_path(path)):
        if stale is not None:
            stale.unlink(missing_ok=True)
    auth_store().reset()
    sessions().drop_all()
    log.warning("factory reset from the web page")
    return restart()


ACTIONS: dict[str, Callable[[], str | None]] = {
    "restart": restart,
    "factory-reset": factory_reset,
}


@bp.get("/actions")
def page() -> str:
    return render_template("actions.html", page="actions", done=None, error=None)


@bp.post("/actions/<name>")
@bp.post("/api/actions/<name>")
def run(name: str) -> ResponseReturnValue:
    action = ACTIONS.get(name)
    if action is None:
        return _answer(404, error=f"no action {name!r}")
    source: Any = request.form
    if request.is_json:
        try:
            source = json_body()
        except ValueError:
            source = None
    confirm = source.get("confirm") if isinstance(source, dict | MultiDict) else None
    if confirm not in ("yes", True):
        return _answer(400, error="confirm: tick the confirmation box to go ahead")
    problem = action()
    if problem is not None:
        return _answer(501, error=problem)
    return _answer(202, done=name)


def _answer(status: int, done: str | None = None, error: str | None = None) -> ResponseReturnValue:
    if is_api():
        return jsonify(errors=[error]) if error else jsonify(done=done), status
    return render_template("actions.html", page="actions", done=done, error=error), status
