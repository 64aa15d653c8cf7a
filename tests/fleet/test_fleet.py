"""The fleet link against a real Mosquitto (TLS, client certificates, passwords, ACLs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from appliance.config import Config, ConfigManager
from appliance.fleet.client import FleetClient, FleetSettings
from appliance.fleet.operator import Operator


def device(broker, name: str, tmp_path, manager: ConfigManager | None = None) -> FleetClient:
    cert, key = broker.cert(name)
    settings = FleetSettings(
        broker.uri,
        name,
        name,
        broker.password(name),
        str(broker.ca),
        str(cert),
        str(key),
        telemetry_s=1.0,
    )
    client = FleetClient(
        manager or ConfigManager(Config()),
        settings,
        status=lambda: {"fps": 30.0},
        state_file=tmp_path / f"{name}.json",
    )
    client.start()
    assert client.connected.wait(10), "the camera did not connect"
    return client


def operator(broker) -> Operator:
    cert, key = broker.cert("operator")
    op = Operator(
        broker.operator_uri,
        "operator",
        broker.password("operator"),
        str(broker.ca),
        str(cert),
        str(key),
    )
    op.start()
    return op


def test_a_desired_change_is_applied_and_reported_with_its_version(broker, tmp_path):
    manager = ConfigManager(Config())
    cam = device(broker, "cam1", tmp_path, manager)
    op = operator(broker)
    try:
        op.wait_status("cam1", online=True)
        version = op.set_config("cam1", {"web": {"overlay": True}, "codec": {"floor": 0.7}})
        report = op.wait_reported("cam1", version)
        assert report["accepted"] is True and report["errors"] == []
        assert report["config"]["web"]["overlay"] is True
        assert manager.config.web.overlay is True and manager.config.codec.floor == 0.7
    finally:
        cam.stop()
        op.stop()


def test_an_invalid_desired_config_is_refused_with_its_reason_and_nothing_changes(broker, tmp_path):
    manager = ConfigManager(Config())
    before = manager.config
    cam = device(broker, "cam1", tmp_path, manager)
    op = operator(broker)
    try:
        version = op.set_config("cam1", {"web": {"jpeg_quality": 500}, "codec": {"floor": 0.5}})
        report = op.wait_reported("cam1", version)
        assert report["accepted"] is False
        assert any("web.jpeg_quality" in e for e in report["errors"])
        assert manager.config == before  # not even the valid half was applied
        # garbage is answered too, and changes nothing
        op.client.publish("appliance/cam1/config/desired", b"{not json", 1, True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "JSON" not in str(op.reported["cam1"]):
            time.sleep(0.05)
        assert op.reported["cam1"]["accepted"] is False and manager.config == before
    finally:
        cam.stop()
        op.stop()


DEVICE_PROCESS = """
import sys, time
from appliance.config import Config, ConfigManager
from appliance.fleet.client import FleetClient, FleetSettings
uri, ca, cert, key = sys.argv[1:5]
client = FleetClient(ConfigManager(Config()), FleetSettings(uri, "cam2", "cam2",
                     "cam2-secret", ca, cert, key))
client.start()
client.connected.wait(10)
print("up", flush=True)
time.sleep(60)
"""


def test_the_last_will_marks_a_killed_camera_offline(broker):
    cert, key = broker.cert("cam2")
    process = subprocess.Popen(
        [sys.executable, "-c", DEVICE_PROCESS, broker.uri, str(broker.ca), str(cert), str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )
    op = operator(broker)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "up"
        op.wait_status("cam2", online=True)
        process.kill()  # no goodbye: only the broker's last will can say it
        process.wait(5)
        assert op.wait_status("cam2", online=False, timeout=30)["online"] is False
    finally:
        process.kill()
        op.stop()


def test_a_camera_can_neither_read_nor_write_another_cameras_topics(broker, tmp_path):
    import paho.mqtt.client as mqtt

    victim = ConfigManager(Config())
    cam2 = device(broker, "cam2", tmp_path, victim)
    seen: list[str] = []
    cert, key = broker.cert("cam1")
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cam1", protocol=mqtt.MQTTv5)
    spy.username_pw_set("cam1", broker.password("cam1"))
    spy.tls_set(ca_certs=str(broker.ca), certfile=str(cert), keyfile=str(key))
    spy.on_message = lambda _c, _u, m: seen.append(m.topic)
    connected = threading.Event()
    spy.on_connect = lambda *_a: connected.set()
    spy.connect("127.0.0.1", broker.port)
    spy.loop_start()
    try:
        assert connected.wait(10)
        spy.subscribe("appliance/cam2/#", 1)
        spy.subscribe("appliance/cam1/#", 1)
        time.sleep(0.3)
        attack = {"version": 99, "config": {"web": {"overlay": True}}}
        spy.publish("appliance/cam2/config/desired", json.dumps(attack), 1, True)
        spy.publish("appliance/cam1/probe", b"mine", 1, False)
        time.sleep(1.5)  # cam2 publishes telemetry every second: it would be seen
        assert "appliance/cam1/probe" in seen  # its own subtree works ...
        assert not [t for t in seen if t.startswith("appliance/cam2/")]  # ... no other
        assert victim.config.web.overlay is False and cam2.shadow.version == 0
    finally:
        spy.loop_stop()
        spy.disconnect()
        cam2.stop()


def test_no_desired_change_is_lost_when_the_broker_is_killed_mid_traffic(broker, tmp_path):
    manager = ConfigManager(Config())
    cam = device(broker, "cam1", tmp_path, manager)
    op = operator(broker)
    try:
        op.wait_status("cam1", online=True)
        last = 0
        for round_ in range(3):
            for step in range(5):
                last = op.set_config("cam1", {"codec": {"intra_period": 10 + 5 * round_ + step}})
            broker.kill()  # SIGKILL, right after the publishes: some never hit the disk
            time.sleep(0.5)
            broker.start()
        report = op.wait_reported("cam1", last, timeout=60)
        assert report["version"] == last and report["accepted"] is True
        assert manager.config.codec.intra_period == 10 + 5 * 2 + 4
        assert cam.connects >= 2 and op.connects >= 2  # both came back by themselves
    finally:
        cam.stop()
        op.stop()


def test_a_restarted_camera_does_not_reapply_an_old_desired_version(broker, tmp_path):
    manager = ConfigManager(Config())
    cam = device(broker, "cam1", tmp_path, manager)
    op = operator(broker)
    try:
        version = op.set_config("cam1", {"web": {"overlay": True}})
        op.wait_reported("cam1", version)
        cam.stop()
        manager.update({"web": {"overlay": False}}, origin="web")  # a local change since
        again = device(broker, "cam1", tmp_path, manager)  # gets the retained desired
        time.sleep(1.0)
        assert manager.config.web.overlay is False  # version 1 was answered already
        assert again.shadow.version == version
        again.stop()
    finally:
        op.stop()


@pytest.mark.parametrize("uri", ["http://x:1", "mqtt://", "mqtts://h:99999"])
def test_bad_broker_addresses_are_refused_by_the_schema(uri):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="mqtts://HOST:PORT"):
        Config.model_validate({"fleet": {"broker": uri}})


def daemon_config(broker, tmp_path, name: str = "cam1", fleet=None, **sections):
    """A daemon's config that joins ``broker`` as ``name`` (its password in a file);
    ``fleet``: more fields of the fleet section."""
    from appliance.config import parse_config

    cert, key = broker.cert(name)
    secret = tmp_path / "password"
    secret.write_text(broker.password(name) + "\n")
    return parse_config({
        "source": {"uri": "synthetic://", "width": 320, "height": 180},
        "fleet": {"enabled": True, "broker": broker.uri, "device_id": name,
                  "username": name, "password_file": str(secret), "ca_file": str(broker.ca),
                  "cert_file": str(cert), "key_file": str(key), "telemetry_s": 1.0,
                  **(fleet or {})},
        **sections,
    })  # fmt: skip


def test_the_daemon_joins_the_fleet_and_says_goodbye(broker, tmp_path):
    from appliance.app import Appliance

    config = daemon_config(broker, tmp_path)
    app = Appliance(ConfigManager(config, tmp_path / "config.yaml"), web=False)
    op = operator(broker)
    app.start()
    try:
        status = op.wait_status("cam1", online=True)
        assert "pipeline" in status  # the daemon's own status, as the web page shows it
        version = op.set_config("cam1", {"align": {"level": False}})
        assert op.wait_reported("cam1", version)["accepted"] is True
        assert app.config.config.align.level is False
        assert (tmp_path / "config.fleet.json").is_file()  # the answered version persists
    finally:
        assert app.stop(3.0) == []
    assert op.wait_status("cam1", online=False)["online"] is False  # said, not the will
    op.stop()


def test_the_fleet_command_lists_devices_and_sets_a_group(broker, tmp_path, capsys):
    from appliance.cli import main
    from appliance.fleet.cli import patch_of

    assert patch_of(["web.overlay=true", "codec.floor=0.7", "device.name=Room 4"]) == {
        "web": {"overlay": True},
        "codec": {"floor": 0.7},
        "device": {"name": "Room 4"},
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        patch_of(["overlay"])
    managers = {name: ConfigManager(Config()) for name in ("cam1", "cam2")}
    cams = [device(broker, name, tmp_path, m) for name, m in managers.items()]
    secret = tmp_path / "operator-password"
    secret.write_text(broker.password("operator"))
    cert, key = broker.cert("operator")
    common = ["fleet", "--broker", broker.operator_uri, "--password-file", str(secret),
              "--ca", str(broker.ca), "--cert", str(cert), "--key", str(key)]  # fmt: skip
    try:
        assert main([*common, "devices", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert {r["device"] for r in rows} == {"cam1", "cam2"} and all(r["online"] for r in rows)
        assert main([*common, "set", "--group", "cam*", "web.overlay=true", "--json"]) == 0
        results = json.loads(capsys.readouterr().out)
        assert all(r["accepted"] for r in results.values()) and len(results) == 2
        assert all(m.config.web.overlay for m in managers.values())
        assert main([*common, "set", "cam1", "web.jpeg_quality=5"]) == 1  # refused: exit 1
        assert "refused" in capsys.readouterr().out
    finally:
        for cam in cams:
            cam.stop()


def test_the_fleet_bench_measures_a_group_change_to_all_reported():
    import shutil

    from appliance.fleet.bench import bench_fleet

    if shutil.which("mosquitto") is None:
        message = "mosquitto is not installed (tests/system-deps.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = bench_fleet(devices=12, rounds=2, progress=lambda _m: None)
    a = result["all_reported_ms"]
    assert result["devices"] == 12 and 0 < a["p50"] <= a["p99"] <= a["max"]
    assert result["per_device_ms"]["p99"] <= a["max"] + 1e-6
