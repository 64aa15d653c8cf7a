"""Flask app factory. Blueprints by role so the full web page (its own work) slots in."""

from __future__ import annotations

from typing import Any, Protocol

from flask import Flask

from appliance.config import ConfigManager
from appliance.output.preview import JpegHub


class DaemonView(Protocol):
    """What the web side may see of the daemon: nothing more, so it stays testable."""

    config: ConfigManager
    hub: JpegHub

    def status(self) -> dict[str, Any]: ...

    def request_snapshot(self) -> None: ...


def create_app(daemon: DaemonView) -> Flask:
    from appliance.web.api import api
    from appliance.web.preview import preview

    app = Flask(__name__)
    app.config["DAEMON"] = daemon
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(preview)
    app.register_blueprint(api, url_prefix="/api")
    return app
