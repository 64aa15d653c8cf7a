"""The settings page: a form generated from the config schema, errors per field."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from appliance.config import ConfigError
from appliance.web import forms
from appliance.web.apply import apply_change
from appliance.web.common import brief, daemon

bp = Blueprint("settings", __name__)


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> ResponseReturnValue:
    manager = daemon().config
    notice = ""
    general: list[str] = []
    status = 200
    if request.method == "POST":
        patch = forms.patch_from_form(request.form, manager.config)
        try:
            apply_change(manager, patch)
        except ConfigError as exc:
            sections = forms.sections(manager.config)
            forms.fill(sections, request.form)
            general = forms.attach_errors(sections, [brief(e) for e in exc.errors])
            return _page(sections, general, "nothing was changed", 400)
        except OSError as exc:
            general, status = [brief(f"could not save the configuration: {exc}")], 500
        else:
            notice = "saved and applied"
    return _page(forms.sections(manager.config), general, notice, status)


def _page(
    sections: list[forms.Section], general: list[str], notice: str, status: int
) -> ResponseReturnValue:
    manager = daemon().config
    return (
        render_template(
            "settings.html",
            page="settings",
            sections=sections,
            general=general,
            notice=notice,
            pending=sorted(manager.pending_restart),
            persisted=manager.path is not None,
            checkbox_marker=forms.CHECKBOXES,
            failed=status >= 400,
        ),
        status,
    )
