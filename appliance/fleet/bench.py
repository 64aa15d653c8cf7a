"""``appliance fleet bench``: many simulated cameras on one broker; how long a group
configuration change takes until every camera has reported it.

Each simulated camera is the real ``FleetClient`` with its own ``ConfigManager`` (the
schema validation and the shadow included), all in this process. Without ``--broker`` a
throw-away Mosquitto is started on a free loopback port (plain MQTT, anonymous: the
figure is the fleet logic's and the broker's, not TLS handshakes').
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config import Config, ConfigManager
from appliance.fleet.client import FleetClient, FleetSettings
from appliance.fleet.operator import Operator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> bool:
    """Whether something listens on the loopback ``port`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class LocalBroker:
    def __init__(self) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed: give --broker, or apt install it")
        self.folder = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
        self.port = free_port()
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10000\n"
        )
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_for_port(self.port):
            raise RuntimeError("mosquitto did not start")

    @property
    def uri(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


def bench_fleet(
    devices: int = 200, rounds: int = 5, broker: str | None = None, progress: Any = print
) -> dict[str, Any]:
    local = LocalBroker() if broker is None else None
    uri = broker or local.uri  # type: ignore[union-attr]
    cameras: list[FleetClient] = []
    managers: list[ConfigManager] = []
    op = Operator(uri, "", "", client_id="bench-operator")
    try:
        start = time.perf_counter()
        for k in range(devices):
            manager = ConfigManager(Config())
            camera = FleetClient(manager, FleetSettings(uri, f"bench{k:04d}", telemetry_s=3600))
            camera.start()
            cameras.append(camera)
            managers.append(manager)
        for camera in cameras:
            if not camera.connected.wait(30):
                raise RuntimeError(f"{camera.settings.device_id} did not connect")
        connect_s = time.perf_counter() - start
        progress(f"{devices} cameras connected in {connect_s:.1f} s")
        op.start()
        time.sleep(1.0)
        all_reported, per_device = [], []
        for r in range(rounds):
            quality = 50 + r
            sent = time.perf_counter()
            versions = {
                c.settings.device_id: op.set_config(
                    c.settings.device_id, {"web": {"jpeg_quality": quality}}
                )
                for c in cameras
            }
            for device, version in versions.items():
                op.wait_reported(device, version, timeout=60)
                per_device.append(time.perf_counter() - sent)
            all_reported.append(time.perf_counter() - sent)
            assert all(m.config.web.jpeg_quality == quality for m in managers)
            progress(f"round {r + 1}: all {devices} reported in {all_reported[-1] * 1e3:.0f} ms")
        return {
            "devices": devices,
            "rounds": rounds,
            "connect_s": connect_s,
            "all_reported_ms": {
                "p50": float(np.percentile(all_reported, 50) * 1e3),
                "p99": float(np.percentile(all_reported, 99) * 1e3),
                "max": float(max(all_reported) * 1e3),
            },
            "per_device_ms": {
                "p50": float(np.percentile(per_device, 50) * 1e3),
                "p99": float(np.percentile(per_device, 99) * 1e3),
            },
        }
    finally:
        op.stop()
        for camera in cameras:
            camera.stop(0.5)
        if local is not None:
            local.stop()


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    result = bench_fleet(args.devices, args.rounds, None, (lambda _m: None) if args.json else print)
    if args.json:
        print(json.dumps(result))
    else:
        a, d = result["all_reported_ms"], result["per_device_ms"]
        print(
            f"{result['devices']} cameras, {result['rounds']} group changes: all reported "
            f"p50 {a['p50']:.0f} ms, p99 {a['p99']:.0f} ms (max {a['max']:.0f}); "
            f"per camera p50 {d['p50']:.0f} ms, p99 {d['p99']:.0f} ms"
        )
    return 0
