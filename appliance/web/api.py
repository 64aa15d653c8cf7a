"""JSON API: status and the configuration, through the one schema (the page uses it)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from appliance.config import Config, ConfigError
from appliance.web.apply import apply_change
from appliance.web.common import brief, daemon, json_body, optional
from appliance.web.forms import config_schema
from appliance.web.system import fleet_state, temperatures

api = Blueprint("api", __name__)


def _config_body(config: Config) -> dict[str, Any]:
    manager = daemon().config
    return {
        "config": config.model_dump(mode="json"),
        "restart_required": sorted(manager.pending_restart),
        # Without a config file (``appliance run`` with no --config) changes live in
        # memory only and are gone after a restart.
        "persisted": manager.path is not None,
    }


@api.get("/status")
def status() -> ResponseReturnValue:
    body = daemon().status()
    body["temperatures"] = temperatures()
    body["fleet"] = fleet_state(optional("fleet"))
    return jsonify(body)


@api.get("/config")
def get_config() -> ResponseReturnValue:
    return jsonify(_config_body(daemon().config.config))


@api.get("/config/schema")
def get_schema() -> ResponseReturnValue:
    return jsonify(config_schema())


@api.route("/config", methods=["PATCH", "PUT"])
def change_config() -> ResponseReturnValue:
    try:
        document = json_body()
    except ValueError as exc:
        return jsonify(errors=[brief(f"body: {exc}")]), 400
    try:
        config = apply_change(daemon().config, document, replace=request.method == "PUT")
    except ConfigError as exc:
        return jsonify(errors=[brief(error) for error in exc.errors]), 400
    except OSError as exc:
        return jsonify(errors=[brief(f"could not save the configuration: {exc}")]), 500
    return jsonify(_config_body(config))
