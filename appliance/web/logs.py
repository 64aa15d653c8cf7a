"""The logs page: the recent lines from the in-memory buffer, followed live."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from appliance.web.logbuffer import LogBuffer

bp = Blueprint("logs", __name__)


@bp.get("/logs")
def page() -> str:
    return render_template("logs.html", page="logs")


@bp.get("/api/logs")
def lines() -> ResponseReturnValue:
    buffer = cast(LogBuffer, current_app.config["LOGS"])
    try:
        after = int(request.args.get("after", "0"))
    except ValueError:
        return jsonify(errors=["after: expected an integer"]), 400
    return jsonify(lines=buffer.since(after))
