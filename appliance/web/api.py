"""JSON API: status and the configuration, through the one schema."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from appliance.config import Config, ConfigError
from appliance.web.app import DaemonView

api = Blueprint("api", __name__)


def _daemon() -> DaemonView:
    return cast(DaemonView, current_app.config["DAEMON"])


def _config_body(config: Config, restart: set[str]) -> dict[str, Any]:
    return {
        "config": config.model_dump(mode="json"),
        "restart_required": sorted(restart | _daemon().config.pending_restart),
    }


@api.get("/status")
def status() -> ResponseReturnValue:
    return jsonify(_daemon().status())


@api.get("/config")
def get_config() -> ResponseReturnValue:
    return jsonify(_config_body(_daemon().config.config, set()))


@api.get("/config/schema")
def get_schema() -> ResponseReturnValue:
    return jsonify(Config.model_json_schema())


@api.route("/config", methods=["PATCH", "PUT"])
def change_config() -> ResponseReturnValue:
    document = request.get_json(silent=True)
    if document is None:
        error = "body: expected a JSON object (Content-Type: application/json)"
        return jsonify(errors=[error]), 400
    manager = _daemon().config
    try:
        if request.method == "PATCH":
            config, restart = manager.update(document, origin="web")
        else:
            config, restart = manager.replace(document, origin="web")
    except ConfigError as exc:
        return jsonify(errors=exc.errors), 400
    except OSError as exc:
        return jsonify(errors=[f"could not save the configuration: {exc}"]), 500
    return jsonify(_config_body(config, restart))
