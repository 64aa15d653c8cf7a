"""Restart and factory reset need a confirmation; the logs page shows recent lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tests.web.conftest import Served
from tests.web.helpers import Client


def test_restart_needs_a_confirmation_then_makes_the_daemon_exit_for_systemd(
    served: Served,
) -> None:
    client = served.client()
    code, body = client.send("/api/actions/restart", "POST", {})
    assert code == 400 and body["errors"][0].startswith("confirm:")
    assert served.app.restart_reason is None and served.app.fatal() is None
    code, body = client.send("/api/actions/reboot", "POST", {"confirm": True})
    assert code == 404
    code, body = client.send("/api/actions/restart", "POST", {"confirm": True})
    assert code == 202 and body == {"done": "restart"}
    # The supervisor exits with a failure status on this; systemd's Restart=on-failure
    # brings the daemon back.
    assert served.app.fatal() == "restart requested: asked from the web page"


def test_factory_reset_forgets_settings_password_and_sessions(
    served: Served, tmp_path: Path
) -> None:
    client = served.client()
    assert client.send("/api/config", "PATCH", {"web": {"jpeg_quality": 50}})[0] == 200
    assert (tmp_path / "config.auth.json").exists()  # the password, beside the config
    (tmp_path / "config.fleet.json").write_text("{}")
    assert (tmp_path / "config.yaml").exists()
    code, _ = client.send("/api/actions/factory-reset", "POST", {"confirm": True})
    assert code == 202
    for gone in ("config.yaml", "config.auth.json", "config.fleet.json"):
        assert not (tmp_path / gone).exists(), gone
    assert not served.auth.provisioned and served.auth.setup_code is not None
    assert client.get("/api/status")[0] == 401  # every session ended
    assert Client(served.base).log_in() == 409  # setup again, with the new code
    assert served.app.restart_reason is not None


def test_logs_api_returns_recent_lines_after_a_cursor(served: Served) -> None:
    logging.getLogger("appliance.test").warning("a line for the web page <b>")
    client = served.client()
    code, raw, _ = client.get("/api/logs")
    lines = json.loads(raw)["lines"]
    mine = [line for line in lines if line["message"] == "a line for the web page <b>"]
    assert code == 200 and mine and mine[-1]["level"] == "warning"
    code, raw, _ = client.get(f"/api/logs?after={mine[-1]['seq']}")
    assert all(line["seq"] > mine[-1]["seq"] for line in json.loads(raw)["lines"])
    assert client.get("/api/logs?after=x")[0] == 400
