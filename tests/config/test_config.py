import os
from pathlib import Path

import pytest
import yaml

from appliance.config import (
    Config,
    ConfigError,
    ConfigManager,
    dump_config,
    load_config,
    parse_config,
    save_config,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def errors_of(document: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(document)
    return info.value.errors


def test_defaults_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    save_config(path, Config())
    assert load_config(path) == Config()
    assert dump_config(Config()).startswith("#")


def test_every_error_is_reported_with_its_path() -> None:
    errors = errors_of(
        {
            "source": {"width": "wide", "fps": -1, "fsp": 3},
            "web": {"port": 70000, "bind": "not-an-ip"},
            "colour": "red",
        }
    )
    joined = "\n".join(errors)
    assert len(errors) == 6, joined
    assert any(e.startswith("source.width: ") and "integer" in e for e in errors)
    assert any(e.startswith("source.fps: ") and "greater than 0" in e for e in errors)
    assert "source.fsp: unknown key (did you mean 'fps'?)" in errors
    assert any(e.startswith("web.port: ") and "65535" in e for e in errors)
    assert any(e.startswith("web.bind: ") for e in errors)
    assert "colour: unknown key" in errors


def test_source_uris_are_validated() -> None:
    assert (
        parse_config({"source": {"uri": "v4l2:///dev/video2"}}).source.uri == "v4l2:///dev/video2"
    )
    (error,) = errors_of({"source": {"uri": "rtsp://cam"}})
    assert error.startswith("source.uri: unsupported source")
    (error,) = errors_of({"source": {"fallback": ["synthetic://", "csi://x"]}})
    assert error.startswith("source.fallback[1]: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source:\n  width: 1280\n  height: [", "not valid YAML"),
        ("", "empty"),
        ("- just\n- a list\n", "expected a mapping"),
        ("version: 2\n", "version"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert expected in str(info.value)
    assert str(tmp_path / "config.yaml") in str(info.value)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    full = dump_config(parse_config({"source": {"uri": "synthetic://"}}))
    cut = full[: full.index("synthetic://") + 5]  # power lost mid-write of a non-atomic editor
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, cut))


def test_atomic_save_leaves_no_temp_files_and_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    save_config(path, Config())
    save_config(path, parse_config({"web": {"port": 9000}}))
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
    assert yaml.safe_load(path.read_text())["web"]["port"] == 9000


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    save_config(path, Config())
    before = path.read_bytes()

    def fail_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail_fsync)
    with pytest.raises(OSError):
        save_config(path, parse_config({"web": {"port": 9000}}))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


class TestManager:
    def test_valid_change_is_saved_applied_and_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        manager = ConfigManager(Config(), path)
        seen: list[tuple[Config, Config]] = []
        manager.subscribe(lambda old, new: seen.append((old, new)))
        config, restart = manager.update({"web": {"jpeg_quality": 50, "port": 9090}})
        assert config.web.jpeg_quality == 50
        assert restart == {"web.port"}
        assert load_config(path) == config
        assert seen == [(Config(), config)]

    def test_invalid_change_changes_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        manager = ConfigManager(Config(), path)
        save_config(path, manager.config)
        before = path.read_bytes()
        calls: list[object] = []
        manager.subscribe(lambda old, new: calls.append(new))
        for bad in ({"web": {"jpeg_quality": 500}}, {"nope": 1}, ["not", "a", "mapping"]):
            with pytest.raises(ConfigError):
                manager.update(bad)  # type: ignore[arg-type]
        assert manager.config == Config()
        assert path.read_bytes() == before
        assert calls == []

    def test_reload_of_a_broken_file_keeps_the_running_config(self, tmp_path: Path) -> None:
        path = write(tmp_path, "source:\n  uri: synthetic://\n")
        manager = ConfigManager(load_config(path), path)
        path.write_text("source:\n  uri: synthetic://\n  fps: [")
        with pytest.raises(ConfigError):
            manager.reload()
        assert manager.config.source.uri == "synthetic://"
        path.write_text("source:\n  uri: synthetic://\n  fps: 15\n")
        config, _ = manager.reload()
        assert config.source.fps == 15


def test_wrong_types_are_not_coerced() -> None:
    errors = errors_of({"web": {"port": True, "enabled": "yes"}, "source": {"fps": "30"}})
    assert len(errors) == 3, errors
    assert parse_config({"source": {"fps": 25}}).source.fps == 25.0  # an int is a fine float


def test_non_finite_numbers_are_refused() -> None:
    (error,) = errors_of({"source": {"fps": float("nan")}})
    assert error.startswith("source.fps: ") and "finite" in error


def test_source_uris_are_stored_in_one_spelling() -> None:
    config = parse_config({"source": {"uri": " /dev/video0", "fallback": ["/dev/video1"]}})
    assert config.source.uri == "v4l2:///dev/video0"
    assert config.source.fallback == ["v4l2:///dev/video1"]


def test_a_deeply_nested_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested more than 16 deep"):
        load_config(write(tmp_path, "a: " + "[" * 100_000))


def test_pending_restart_follows_the_value_back() -> None:
    manager = ConfigManager(Config())
    manager.update({"web": {"port": 9000}})
    assert manager.pending_restart == {"web.port"}
    manager.update({"web": {"port": 8080}})
    assert manager.pending_restart == set()


def test_a_failing_check_refuses_the_change_and_saves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    manager = ConfigManager(Config(), path)

    def no_port_80(old: Config, new: Config) -> None:
        if new.web.port == 80:
            raise ConfigError(["web.port: port 80 needs privileges this daemon does not have"])

    manager.add_check(no_port_80)
    with pytest.raises(ConfigError, match="privileges"):
        manager.update({"web": {"port": 80}})
    assert manager.config == Config() and not path.exists()
