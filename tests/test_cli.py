"""The ``appliance`` command as scripts and people call it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import __version__
from appliance.config import Config, save_config


def appliance(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    result = appliance("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"appliance {__version__}"


@pytest.mark.parametrize("command", ["run", "check-config", "bench", "hw"])
def test_every_command_has_help(command: str) -> None:
    result = appliance(command, "--help")
    assert result.returncode == 0 and "usage: appliance " + command in result.stdout


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    save_config(path, Config())
    result = appliance("check-config", str(path))
    assert result.returncode == 0 and "valid" in result.stdout


def test_check_config_prints_every_error_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("source:\n  width: -4\n  uri: http://x\nweb:\n  port: '80a'\n")
    result = appliance("check-config", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    for field in ("source.width:", "source.uri:", "web.port:"):
        assert field in result.stderr


def test_check_config_on_a_missing_file(tmp_path: Path) -> None:
    result = appliance("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1 and "file not found" in result.stderr


def test_bad_arguments_are_refused_on_stderr() -> None:
    result = appliance("bench", "--size", "big")
    assert result.returncode == 2 and "expected WIDTHxHEIGHT" in result.stderr
    result = appliance("run", "--source", "rtsp://x")
    assert result.returncode == 78 and "unsupported source" in result.stderr  # not restarted


@pytest.mark.slow
def test_bench_json_has_the_documented_keys() -> None:
    result = appliance("bench", "--json", "--seconds", "1", "--size", "320x240", "--fps", "30")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["fps"] > 10
    assert isinstance(figures["dropped"], int)
    for name in ("passthrough", "preview"):
        stage = figures["stages"][name]
        assert 0 <= stage["p50_ms"] <= stage["p99_ms"]
    assert figures["latency"]["p99_ms"] > 0


def test_bench_with_a_source_that_cannot_open(tmp_path: Path) -> None:
    result = appliance("bench", "--source", f"file://{tmp_path}/missing.mp4", "--seconds", "1")
    assert result.returncode == 1 and "missing.mp4" in result.stderr


def test_hw_reports_a_backend_for_every_part() -> None:
    result = appliance("hw", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for part in ("capture", "inference", "uvc", "hotplug"):
        assert part in report, report


def test_blas_runs_one_thread_per_call_unless_told_otherwise() -> None:
    import os

    code = "import appliance, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    told = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "OPENBLAS_NUM_THREADS": "4"},
    )
    assert plain.stdout.strip() == "1" and told.stdout.strip() == "4"
