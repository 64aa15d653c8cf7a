"""Flask app factory. Blueprints by role so the full web page (its own work) slots in."""

from __future__ import annotations

from typing import Any, Protocol

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from appliance.config import ConfigManager
from appliance.output.preview import JpegHub

MAX_BODY = 64 * 1024  # a config document is a few hundred bytes; refuse floods early
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


class DaemonView(Protocol):
    """What the web side may see of the daemon: nothing more, so it stays testable."""

    config: ConfigManager
    hub: JpegHub

    def status(self) -> dict[str, Any]: ...

    def request_snapshot(self) -> None: ...


def create_app(daemon: DaemonView, loopback_only: bool = True) -> Flask:
    """``loopback_only``: the server listens on loopback, so only loopback Host names are
    served; a page elsewhere cannot reach the API through DNS rebinding."""
    from appliance.web.api import api
    from appliance.web.preview import preview

    app = Flask(__name__)
    app.config["DAEMON"] = daemon
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(preview)
    app.register_blueprint(api, url_prefix="/api")

    if loopback_only:

        @app.before_request
        def _loopback_host_only() -> None:
            if request.host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
                abort(403, description="this page answers to localhost only")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if request.path.startswith("/api/"):
            return jsonify(errors=[exc.description]), exc.code or 500
        return exc

    return app
