"""Staged updates through the broker: real cameras (FleetClient + the real update agent)
take a signed bundle from the operator's canary stage first; failures halt the rest."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.config import Config, ConfigManager
from appliance.fleet.client import FleetClient, FleetSettings
from appliance.runtime.bundle import factory_bundle_dir
from ota.agent import Agent
from ota.compat import Device
from ota.health import hash_gate
from ota.signing import keygen, load_private_key, load_public_key, sign
from tests.conftest import wait_until
from tests.ota.helpers import BUNDLE, make_bundle

from .test_fleet import daemon_config, operator


def failing_gate(_slot: Path) -> list[str]:
    return ["the pipeline did not reach its frame rate"]


def camera(broker, name: str, tmp_path: Path, public, healthy: bool) -> tuple[FleetClient, Agent]:
    factory = tmp_path / "factory"
    if not factory.exists():
        shutil.copytree(factory_bundle_dir() / BUNDLE, factory / BUNDLE)
    agent = Agent(
        tmp_path / name,
        [public],
        Device("generic-x86", {"onnxruntime": "1.20.1"}),
        hash_gate if healthy else failing_gate,
    )
    assert agent.initialize(factory)
    cert, key = broker.cert(name)
    settings = FleetSettings(
        broker.uri, name, name, broker.password(name), str(broker.ca), str(cert), str(key)
    )
    client = FleetClient(
        ConfigManager(Config()),
        settings,
        updater=lambda source, job: agent.install(source, job_id=job),
    )
    client.start()
    assert client.connected.wait(10)
    return client, agent


def signed_update(tmp_path: Path):
    private, public = keygen(tmp_path / "keys")
    work = tmp_path / "update"
    work.mkdir()
    bundle = make_bundle(work, "0.10.21-12", generation=2)
    return sign(bundle, load_private_key(private), work / "v2.bundle"), load_public_key(public)


def versions(agent: Agent) -> str:
    status = agent.status()
    return status["slots"][status["active_slot"]][BUNDLE]


def test_a_staged_rollout_updates_the_canary_then_the_rest(broker, tmp_path):
    update, public = signed_update(tmp_path)
    cams = [camera(broker, name, tmp_path, public, True) for name in ("cam1", "cam2")]
    op = operator(broker)
    try:
        report = op.rollout(["cam1", "cam2"], str(update), canary=0.5, timeout=60)
        assert report["halted"] is False
        assert {d: r["state"] for d, r in report["results"].items()} == {
            "cam1": "done",
            "cam2": "done",
        }
        assert all(versions(agent) == "0.10.21-12" for _, agent in cams)
    finally:
        for client, _ in cams:
            client.stop()
        op.stop()


def test_a_failing_canary_halts_the_rollout_and_the_rest_keep_their_models(broker, tmp_path):
    update, public = signed_update(tmp_path)
    bad = camera(broker, "cam1", tmp_path, public, healthy=False)  # first in order: canary
    good = camera(broker, "cam2", tmp_path, public, healthy=True)
    op = operator(broker)
    try:
        report = op.rollout(["cam1", "cam2"], str(update), canary=0.5, timeout=60)
        assert report["halted"] is True and report["not_started"] == ["cam2"]
        assert report["results"]["cam1"]["state"] == "rolled_back"
        assert versions(bad[1]) == "0.10.21-2"  # rolled back to its old models
        assert versions(good[1]) == "0.10.21-2" and good[1].status()["job"] is None
    finally:
        for client, _ in (bad, good):
            client.stop()
        op.stop()


def test_the_fleet_command_rolls_out_to_a_group(broker, tmp_path, capsys):
    import json

    from appliance.cli import main

    update, public = signed_update(tmp_path)
    cams = [camera(broker, name, tmp_path, public, True) for name in ("cam1", "cam2")]
    secret = tmp_path / "operator-password"
    secret.write_text(broker.password("operator"))
    cert, key = broker.cert("operator")
    try:
        code = main(
            [
                "fleet",
                "--broker",
                broker.operator_uri,
                "--password-file",
                str(secret),
                "--ca",
                str(broker.ca),
                "--cert",
                str(cert),
                "--key",
                str(key),
                "update",
                str(update),
                "--group",
                "cam*",
                "--canary",
                "0.5",
                "--json",
            ]
        )
        assert code == 0
        report = json.loads(capsys.readouterr().out)
        assert report["halted"] is False and len(report["results"]) == 2
        assert all(versions(agent) == "0.10.21-12" for _, agent in cams)
    finally:
        for client, _ in cams:
            client.stop()


def test_the_daemon_takes_an_update_over_mqtt_and_runs_the_new_models(broker, tmp_path):
    from appliance.app import Appliance

    update, _ = signed_update(tmp_path)
    root = tmp_path / "ota"
    (root / "keys").mkdir(parents=True)
    shutil.copy(tmp_path / "keys" / "ota-signing.pub", root / "keys")
    ota = {"enabled": True, "root": str(root), "health_s": 1.0}
    config = daemon_config(broker, tmp_path, ota=ota)
    app = Appliance(ConfigManager(config, tmp_path / "config.yaml"), web=False)
    op = operator(broker)
    app.start()
    try:
        op.wait_status("cam1", online=True)
        report = op.rollout(["cam1"], str(update), canary=1.0, timeout=60)
        assert report["results"]["cam1"]["state"] == "done", report
        assert app.status()["models"]["versions"][BUNDLE] == "0.10.21-12"
        assert app.models_dir == (root / "slots" / "b").resolve()  # the stages run it

        def telemetry_says_installed() -> bool:  # the operator's view, from telemetry
            models = op.status["cam1"].get("models", {})
            job = (models.get("updates") or {}).get("job") or {}
            return models["versions"][BUNDLE] == "0.10.21-12" and job.get("result") == "installed"

        assert wait_until(telemetry_says_installed, 10.0)
        assert op.status["cam1"]["online"] is True
    finally:
        assert app.stop(3.0) == []
        op.stop()
