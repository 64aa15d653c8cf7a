"""JSON API: status and the configuration, through the one schema."""

from __future__ import annotations

import json
from typing import Any, cast

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from appliance.config import Config, ConfigError
from appliance.web.app import DaemonView

api = Blueprint("api", __name__)


def _daemon() -> DaemonView:
    return cast(DaemonView, current_app.config["DAEMON"])


def _config_body(config: Config) -> dict[str, Any]:
    manager = _daemon().config
    return {
        "config": config.model_dump(mode="json"),
        "restart_required": sorted(manager.pending_restart),
        # Without a config file (``appliance run`` with no --config) changes live in
        # memory only and are gone after a restart.
        "persisted": manager.path is not None,
    }


def _json_body() -> Any:
    if not request.is_json:
        raise ValueError("expected a JSON object (Content-Type: application/json)")
    try:
        return json.loads(request.get_data(as_text=True))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


@api.get("/status")
def status() -> ResponseReturnValue:
    return jsonify(_daemon().status())


@api.get("/config")
def get_config() -> ResponseReturnValue:
    return jsonify(_config_body(_daemon().config.config))


@api.get("/config/schema")
def get_schema() -> ResponseReturnValue:
    return jsonify(Config.model_json_schema())


@api.route("/config", methods=["PATCH", "PUT"])
def change_config() -> ResponseReturnValue:
    try:
        document = _json_body()
    except ValueError as exc:
        return jsonify(errors=[f"body: {exc}"]), 400
    manager = _daemon().config
    try:
        if request.method == "PATCH":
            config, _ = manager.update(document, origin="web")
        else:
            config, _ = manager.replace(document, origin="web")
    except ConfigError as exc:
        return jsonify(errors=exc.errors), 400
    except OSError as exc:
        return jsonify(errors=[f"could not save the configuration: {exc}"]), 500
    return jsonify(_config_body(config))
