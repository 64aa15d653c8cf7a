"""The files a change from the web page or the fleet may name (appliance/config/paths.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import Config, ConfigError, ConfigManager, save_config
from appliance.config.paths import PathPolicy


@pytest.fixture
def policy(tmp_path: Path) -> PathPolicy:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "media").mkdir()
    return PathPolicy((tmp_path / "secrets",), (tmp_path / "media",))


def refusal(manager: ConfigManager, patch: dict, origin: str = "web") -> str:
    before = manager.config
    with pytest.raises(ConfigError) as refused:
        manager.update(patch, origin=origin)
    assert manager.config is before
    return "\n".join(refused.value.errors)


@pytest.mark.parametrize("origin", ["web", "mqtt"])
def test_a_secret_outside_the_secret_store_is_refused_from_outside(policy, tmp_path, origin):
    manager = ConfigManager(Config(), paths=policy)
    key = tmp_path / "device.key"  # readable, but not a secret the fleet link may send
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    patch = {"fleet": {"broker": "mqtt://attacker.example:1883", "password_file": str(key)}}
    assert "fleet.password_file: the web page and the fleet may name files in" in refusal(
        manager, patch, origin
    )
    inside = tmp_path / "secrets" / "broker-password"
    manager.update({"fleet": {"password_file": str(inside)}}, origin=origin)
    assert manager.config.fleet.password_file == str(inside)


def test_a_link_out_of_an_allowed_directory_is_refused(policy, tmp_path):
    manager = ConfigManager(Config(), paths=policy)
    os.symlink("/etc/passwd", tmp_path / "media" / "innocent.png")
    error = refusal(manager, {"background": {"image": str(tmp_path / "media" / "innocent.png")}})
    assert error.startswith("background.image: ")
    dotted = str(tmp_path / "media" / ".." / "secrets" / "x.png")
    assert "background.image" in refusal(manager, {"background": {"image": dotted}})


def test_the_answer_is_the_same_whether_the_file_exists_or_not(policy, tmp_path):
    manager = ConfigManager(Config(), paths=policy)
    existing = refusal(manager, {"background": {"image": "/etc/passwd"}})
    missing = refusal(manager, {"background": {"image": "/etc/no-such-file"}})
    assert existing == missing


def test_sources_and_fallbacks_name_media_only(policy, tmp_path):
    manager = ConfigManager(Config(), paths=policy)
    assert "source.uri" in refusal(manager, {"source": {"uri": "file:///etc/shadow"}})
    error = refusal(manager, {"source": {"fallback": ["synthetic://", "file:///root/x.mp4"]}})
    assert error.startswith("source.fallback[1]: ")
    clip = f"file://{tmp_path / 'media' / 'clip.mp4'}"
    manager.update({"source": {"uri": clip, "fallback": ["v4l2:///dev/video0"]}}, origin="web")
    assert manager.config.source.uri == clip


def test_the_update_agents_directory_is_set_in_the_config_file_only(policy, tmp_path):
    manager = ConfigManager(Config(), paths=policy)
    error = refusal(manager, {"ota": {"root": str(tmp_path / "media")}}, "mqtt")
    assert error == "ota.root: set only in the config file on the device"


def test_the_config_file_may_name_any_path_and_keeps_it(policy, tmp_path):
    path = tmp_path / "config.yaml"
    save_config(path, Config())
    manager = ConfigManager(Config(), path, paths=policy)
    trusted = Config.model_validate(
        {"fleet": {"password_file": "/etc/appliance/broker.pass"}, "ota": {"root": "/srv/ota"}}
    )
    save_config(path, trusted)
    manager.reload()  # the device's own file: not checked
    assert manager.config.fleet.password_file == "/etc/appliance/broker.pass"
    manager.update({"web": {"overlay": True}}, origin="web")  # unchanged paths stay
    assert manager.config.ota.root == "/srv/ota"
    manager.update({"background": {"image": "/anywhere.png"}}, origin="api")  # the code's own


def test_the_policy_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("APPLIANCE_SECRETS_DIR", f"{tmp_path}/a:{tmp_path}/b")
    monkeypatch.delenv("APPLIANCE_MEDIA_DIR", raising=False)
    policy = PathPolicy.from_environment()
    assert policy.secrets == (tmp_path / "a", tmp_path / "b")
    assert policy.media == (Path("/var/lib/appliance/media"),)
    manager = ConfigManager(Config())  # reads the environment at each change
    manager.update({"fleet": {"key_file": str(tmp_path / "b" / "k.pem")}}, origin="web")
    assert "fleet.key_file" in refusal(manager, {"fleet": {"key_file": "/etc/ssl/k.pem"}})


def test_the_broker_stays_where_the_config_file_put_it_while_a_password_is_set(policy, tmp_path):
    secret = str(tmp_path / "secrets" / "broker-password")
    trusted = Config.model_validate({"fleet": {"password_file": secret, "username": "cam1"}})
    manager = ConfigManager(trusted, paths=policy)
    error = refusal(manager, {"fleet": {"broker": "mqtt://attacker.example:1883"}})
    assert error.startswith("fleet.broker: set only in the config file on the device while")
    assert "fleet.username" in refusal(manager, {"fleet": {"username": "cam2"}}, "mqtt")
    # with no password configured, the page may set a broker (nothing to send there)
    fresh = ConfigManager(Config(), paths=policy)
    fresh.update({"fleet": {"broker": "mqtts://fleet.example:8883"}}, origin="web")
    assert "fleet.broker" in refusal(
        fresh, {"fleet": {"broker": "mqtt://attacker.example:1", "password_file": secret}}
    )


def test_the_page_can_put_back_what_the_config_file_set(policy, tmp_path):
    from appliance.web.apply import apply_change

    trusted = Config.model_validate({"background": {"image": "/home/u/pic.png"}})
    manager = ConfigManager(trusted, paths=policy)
    manager.subscribe(lambda old, new: (_ for _ in ()).throw(RuntimeError("camera busy")))
    picture = str(tmp_path / "media" / "new.png")
    with pytest.raises(ConfigError, match="camera busy") as failed:
        apply_change(manager, {"background": {"image": picture}})
    assert "restoring" not in str(failed.value)
    assert manager.config.background.image == "/home/u/pic.png"
