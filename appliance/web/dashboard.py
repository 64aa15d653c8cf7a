"""The dashboard page: live picture, plots of fps and stage latency, health."""

from __future__ import annotations

from flask import Blueprint, render_template

from appliance.web.common import daemon, optional

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> str:
    cfg = daemon().config.config
    return render_template(
        "dashboard.html",
        page="dashboard",
        overlay=cfg.web.overlay,
        has_before=optional("before_hub") is not None,
    )
