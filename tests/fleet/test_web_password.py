"""The web page's password provisioned over MQTT: the operator hashes it, only the
scrypt record crosses the broker, the camera's page then takes it; a bad record is
refused with its reason and changes nothing."""

from __future__ import annotations

from appliance.app import Appliance
from appliance.cli import main
from appliance.config import ConfigManager
from appliance.fleet.bench import free_port
from appliance.web.auth import hash_password
from tests.web.helpers import Client

from .test_fleet import daemon_config, operator

NEW = "provisioned over mqtt"


def test_the_operator_sets_the_web_password_and_bad_records_change_nothing(
    broker, tmp_path, capsys
):
    port = free_port()
    config = daemon_config(broker, tmp_path, web={"port": port})
    app = Appliance(ConfigManager(config, tmp_path / "config.yaml"), web=True)
    op = operator(broker)
    app.start()
    try:
        op.wait_status("cam1", online=True)
        page = Client(f"http://127.0.0.1:{port}")
        assert page.log_in(NEW) == 409  # first boot: no password yet, setup required

        weak = hash_password(NEW, n=2**10)  # too cheap to guess against
        answer = op.ask("cam1", "web-password", {"scrypt": weak})
        assert answer["ok"] is False and "power of two" in answer["error"]
        garbage = op.ask("cam1", "web-password", {"scrypt": {"scheme": "md5", "hash": "x"}})
        assert garbage["ok"] is False and "scrypt" in garbage["error"]
        assert not (tmp_path / "config.auth.json").exists()  # nothing changed

        secret = tmp_path / "operator-password"
        secret.write_text(broker.password("operator"))
        new = tmp_path / "new-web-password"
        new.write_text(NEW + "\n")
        cert, key = broker.cert("operator")
        common = ["fleet", "--broker", broker.operator_uri, "--password-file", str(secret),
                  "--ca", str(broker.ca), "--cert", str(cert), "--key", str(key)]  # fmt: skip
        assert main([*common, "web-password", "cam1", "--new-password-file", str(new)]) == 0
        assert capsys.readouterr().out.strip() == "cam1: ok"
        assert NEW not in (tmp_path / "config.auth.json").read_text()  # only the hash
        assert Client(f"http://127.0.0.1:{port}").log_in(NEW) == 200
    finally:
        assert app.stop(3.0) == []
        op.stop()
