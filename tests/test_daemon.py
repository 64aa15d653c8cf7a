"""The daemon as systemd runs it: a real process, signals, sd_notify, exit codes."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.app import Appliance
from appliance.config import ConfigManager, parse_config
from appliance.fleet.bench import free_port
from tests.conftest import scaled, wait_until


@pytest.fixture
def still(tmp_path: Path) -> Path:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((72, 128, 3), 90, np.uint8))
    return path


@pytest.fixture
def config_file(tmp_path: Path, still: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"source:\n  uri: file://{still}\n  fallback: []\nweb:\n  port: {free_port()}\n"
    )
    return path


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(scaled(5.0))
    yield sock
    sock.close()


def start_daemon(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_daemon_to_exit(config: Path) -> subprocess.CompletedProcess[str]:
    """For start-up failures: the daemon must exit by itself, with a clear message."""
    return subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def receive(sock: socket.socket, wanted: str, timeout: float = 10.0) -> list[str]:
    """Datagrams until one contains ``wanted`` (``timeout`` scaled to this machine)."""
    messages: list[str] = []
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        messages.append(message)
        if wanted in message.splitlines():
            return messages
    raise AssertionError(f"no {wanted!r} among {messages}")


@pytest.mark.slow
def test_ready_then_watchdog_pings_then_clean_exit_on_sigterm(
    config_file: Path, notify_socket: socket.socket, tmp_path: Path
) -> None:
    proc = start_daemon(
        config_file,
        {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"},
    )
    try:
        receive(notify_socket, "READY=1")
        pings = [m for m in receive(notify_socket, "WATCHDOG=1") if "WATCHDOG=1" in m]
        receive(notify_socket, "WATCHDOG=1")  # and it keeps pinging
        assert pings
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        assert time.monotonic() - sent < 2.0
        assert code == 0
        receive(notify_socket, "STOPPING=1", timeout=1.0)
    finally:
        proc.kill()
        output = proc.communicate()[0]
    assert "live picture at http://localhost:" in output
    assert "SIGTERM received" in output


@pytest.mark.slow
def test_sigint_stops_within_two_seconds(config_file: Path) -> None:
    proc = start_daemon(config_file)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "capturing from" in line:
                break
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - sent < 2.0
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.slow
def test_sighup_with_a_broken_file_keeps_the_running_config(config_file: Path) -> None:
    proc = start_daemon(config_file)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "capturing from" in line:
                break
        config_file.write_text(config_file.read_text() + "  jpeg_quality: [\n")
        proc.send_signal(signal.SIGHUP)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "keeping the running configuration" in line:
                break
        assert proc.poll() is None  # still running
        assert any("not valid YAML" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_an_invalid_config_file_exits_78_with_every_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("source:\n  fps: 0\nweb:\n  prot: 80\n")
    result = run_daemon_to_exit(path)
    assert result.returncode == 78
    assert "source.fps:" in result.stderr
    assert "web.prot: unknown key (did you mean 'port'?)" in result.stderr


def test_a_busy_port_is_a_clear_fatal_error(config_file: Path) -> None:
    port = int(config_file.read_text().split("port: ")[1])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = run_daemon_to_exit(config_file)
    assert result.returncode == 1
    assert "cannot start: web server on 127.0.0.1" in result.stdout
    assert "in use" in result.stdout


def test_stop_leaves_no_thread_behind(still: Path) -> None:
    before = set(threading.enumerate())
    config = parse_config({"source": {"uri": f"file://{still}"}, "web": {"port": free_port()}})
    app = Appliance(ConfigManager(config))
    app.start()
    assert wait_until(lambda: app.pipeline.stats()["frames_out"] > 0 or app.capture.last_frame_at)
    started = time.monotonic()
    assert app.stop() == []
    assert time.monotonic() - started < 2.0
    assert wait_until(lambda: set(threading.enumerate()) <= before, timeout=1.0), [
        t.name for t in set(threading.enumerate()) - before
    ]
