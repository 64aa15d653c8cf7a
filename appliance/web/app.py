"""Flask app factory: blueprints by role, all behind one login wall (security.py)."""

from __future__ import annotations

from typing import Any, Protocol

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from appliance.config import ConfigManager
from appliance.output.preview import JpegHub
from appliance.web.admission import MAX_BODY, Admission
from appliance.web.auth import AuthStore, auth_path
from appliance.web.devices import KnownDevices
from appliance.web.logbuffer import install_log_buffer
from appliance.web.ratelimit import LoginLimiter
from appliance.web.sessions import SessionStore

__all__ = ["MAX_BODY", "DaemonView", "create_app"]


class DaemonView(Protocol):
    """What the web side may see of the daemon: nothing more, so it stays testable.

    Optional parts, looked up with getattr so a smaller daemon still serves the page:
    ``updates`` (ModelUpdates or None), ``fleet`` (FleetClient or None), ``models_dir``,
    ``inference`` (the Backend the networks run on: its name and per-model choices),
    ``before_hub`` (JpegHub of the unprocessed picture) and ``request_restart(reason)``.
    """

    config: ConfigManager
    hub: JpegHub

    def status(self) -> dict[str, Any]: ...

    def request_snapshot(self) -> None: ...


def create_app(
    daemon: DaemonView,
    loopback_only: bool = True,
    *,
    auth: AuthStore | None = None,
    limiter: LoginLimiter | None = None,
    https: bool = False,
) -> Flask:
    """``loopback_only``: the server listens on loopback, so only loopback Host names are
    served; a page elsewhere cannot reach the API through DNS rebinding.
    ``https``: the cookies get the Secure flag (only when something terminates TLS in
    front of us: the built-in server speaks plain HTTP). A TLS proxy that sends
    ``X-Forwarded-Proto: https`` gets it without this (security.over_tls)."""
    from appliance.web import actions, api, dashboard, login, logs, models, preview, security
    from appliance.web import settings as settings_views

    app = Flask(__name__)
    app.config["DAEMON"] = daemon
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    store = auth or AuthStore(auth_path(daemon.config.path))
    app.config["AUTH"] = store
    app.config["LIMITER"] = limiter or LoginLimiter()
    app.config["SESSIONS"] = SessionStore()
    app.config["DEVICES"] = KnownDevices(store.device_key)
    # What the server (server.py) decides before the app runs: body limits, priority.
    app.config["ADMISSION"] = Admission(app.config["SESSIONS"], app.config["DEVICES"])
    app.config["HTTPS"] = https
    app.config["LOGS"] = install_log_buffer()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    security.install(app, loopback_only)
    app.jinja_env.globals["csrf_token"] = security.csrf_token

    @app.context_processor
    def _device() -> dict[str, Any]:
        return {"device_name": daemon.config.config.device.name}

    for blueprint in (
        login.bp,
        dashboard.bp,
        settings_views.bp,
        models.bp,
        logs.bp,
        actions.bp,
        preview.preview,
    ):
        app.register_blueprint(blueprint)
    app.register_blueprint(api.api, url_prefix="/api")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if security.is_api():
            return jsonify(errors=[exc.description]), exc.code or 500
        return exc

    return app
