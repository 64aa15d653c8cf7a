"""Hostile MQTT traffic against a real daemon and the operator's CLI, and what it costs.

``.venv/bin/python -m tools.hostile.mqtt`` starts Mosquitto with the documented
configuration (docs/broker, as the fleet tests do), the real daemon (``appliance run``,
fleet on, synthetic source) as camera ``cam1``, and an operator. Once the daemon is
idle its peak RSS is reset (``clear_refs``), each attack is sent, and then a real
change must still be applied and reported. One line per attack: what happened, the
daemon's peak RSS over its idle RSS, and how long until the next real change was
reported. Target: at most 64 MB over idle, the link up.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from appliance.fleet.bench import free_port
from appliance.fleet.operator import Operator
from tests.fleet.conftest import Broker, make_broker
from tools.hostile.codec import _status, wait_idle

TARGET_MB = 64.0
NESTED = b"[" * 30_000 + b"]" * 30_000  # under the payload limit: reaches the camera
NESTED_AS_FOUND = b"[" * 200_000 + b"]" * 200_000  # over the broker's packet limit


def client(broker: Broker, user: str, client_id: str, port: int) -> tuple[mqtt.Client, list]:
    """A raw paho client; the list collects (event, reason) as they happen."""
    cert, key = broker.cert(user)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, broker.password(user))
    c.tls_set(str(broker.ca), str(cert), str(key), cert_reqs=ssl.CERT_REQUIRED)
    events: list = []
    c.on_connect = lambda *a: events.append(("connect", str(a[3])))
    c.on_disconnect = lambda *a: events.append(("disconnect", str(a[3])))
    c.connect("127.0.0.1", port)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.02)
    return c, events


def start_daemon(folder: Path, broker: Broker) -> subprocess.Popen[str]:
    cert, key = broker.cert("cam1")
    (folder / "cam1.pass").write_text(broker.password("cam1"))
    config = {
        "source": {"uri": "synthetic://", "width": 320, "height": 180, "fps": 10},
        "web": {"enabled": False},
        "fleet": {"enabled": True, "broker": broker.uri, "device_id": "cam1",
                  "username": "cam1", "password_file": str(folder / "cam1.pass"),
                  "ca_file": str(broker.ca), "cert_file": str(cert), "key_file": str(key),
                  "telemetry_s": 1.0},
    }  # fmt: skip
    (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(folder / "config.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "daemon.log", "w"),
        text=True,
    )


def change_applied(op: Operator, overlay: bool) -> float:
    """Seconds until a real desired change is reported applied (inf: never)."""
    start = time.monotonic()
    version = op.set_config("cam1", {"web": {"overlay": overlay}})
    try:
        report = op.wait_reported("cam1", version, timeout=15)
    except TimeoutError:
        return float("inf")
    return time.monotonic() - start if report["accepted"] else float("inf")


def peak_over_idle_mb(pid: int, idle_kb: int) -> float:
    return (_status(pid, "VmHWM") - idle_kb) / 1024


def reset_peak(pid: int) -> int:
    wait_idle(pid, quiet_s=0.3, limit_s=10)
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid, "VmRSS")


def attacks(broker: Broker, op: Operator) -> list[tuple[str, Callable[[], str]]]:
    desired = "appliance/cam1/config/desired"

    def retained_bomb() -> str:
        op.client.publish(desired, NESTED, 1, retain=True).wait_for_publish(5)
        time.sleep(1)
        refusal = " ".join(op.reported.get("cam1", {}).get("errors", []))
        return f"refused: {refusal[:70]}"

    def bomb_as_found() -> str:
        rogue, events = client(broker, "operator", "rogue", broker.operator_port)
        rogue.publish(desired, NESTED_AS_FOUND, 1, retain=True)
        time.sleep(1)
        rogue.loop_stop()
        return f"broker: {events[-1][0]} ({events[-1][1]})"

    def command_bomb() -> str:
        op.client.publish("appliance/cam1/cmd/web-password", NESTED, 1)
        answer = op.ask("cam1", "ping", {}, timeout=10)
        return f"ping after it: {answer}"

    def flood() -> str:
        for index in range(300):
            body = b'{"version": %d, "config": %s}' % (10**6 + index, NESTED[:40_000])
            op.client.publish(desired, body, 1)
        time.sleep(3)
        return "300 x 40 KB nested desired documents refused"

    def takeover() -> str:
        flaps = 0
        for _ in range(8):
            thief, _events = client(broker, "cam2", "cam1", broker.port)
            time.sleep(0.3)
            flaps += op.status.get("cam1", {}).get("online") is not True
            thief.disconnect()
            thief.loop_stop()
        return f"cam2's credential as client id cam1, 8 times: {flaps} offline flaps"

    return [
        ("nested desired, retained (60 KB, 30,000 deep)", retained_bomb),
        ("nested desired as found (400 KB, 200,000 deep)", bomb_as_found),
        ("nested cmd/web-password (60 KB)", command_bomb),
        ("flood of nested desired documents", flood),
        ("client id takeover", takeover),
    ]


def operator_cli(broker: Broker, folder: Path) -> str:
    """A camera retains a bomb on its own ``ota`` topic: ``appliance fleet devices``."""
    rogue, _ = client(broker, "cam1", "cam1-rogue", broker.port)
    rogue.publish("appliance/cam1/ota", NESTED, 1, retain=True).wait_for_publish(5)
    rogue.loop_stop()
    (folder / "op.pass").write_text(broker.password("operator"))
    cert, key = broker.cert("operator")
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "fleet", "--broker", broker.operator_uri,
         "--password-file", str(folder / "op.pass"), "--ca", str(broker.ca), "--cert",
         str(cert), "--key", str(key), "devices"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - start
    traceback = "Traceback" in done.stderr
    listed = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "nothing"
    return f"rc {done.returncode}, {listed}, traceback: {traceback}, {took:.1f} s"


def main(argv: list[str] | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="hostile-mqtt-") as tmp:
        folder = Path(tmp)
        broker = make_broker(folder)
        broker.start()
        daemon = start_daemon(folder, broker)
        cert, key = broker.cert("operator")
        secret = broker.password("operator")
        op = Operator(broker.operator_uri, "operator", secret, str(broker.ca), str(cert),
                      str(key), client_id=f"op-{free_port()}")  # fmt: skip
        op.start()
        worst = 0.0
        try:
            op.wait_status("cam1", online=True, timeout=60)
            print(f"daemon {daemon.pid} online; CPU: {_cpu()}", flush=True)
            overlay = False
            for name, attack in attacks(broker, op):
                idle = reset_peak(daemon.pid)
                start = time.monotonic()
                outcome = attack()
                overlay = not overlay
                recovered = change_applied(op, overlay)
                peak = peak_over_idle_mb(daemon.pid, idle)
                worst = max(worst, peak)
                alive = daemon.poll() is None
                print(
                    f"{name:48s} {'up' if alive else 'DEAD'}  peak +{peak:5.1f} MB  "
                    f"{time.monotonic() - start:5.1f} s  next change applied in "
                    f"{recovered:.2f} s  | {outcome}",
                    flush=True,
                )
            print(f"{'operator: bomb retained on cam1/ota':48s} {operator_cli(broker, folder)}")
        finally:
            op.stop()
            daemon.terminate()
            daemon.wait(10)
            broker.stop()
        verdict = "within" if worst <= TARGET_MB else "OVER"
        print(f"worst peak over idle: {worst:.1f} MB ({verdict} the {TARGET_MB:.0f} MB target)")
        return 0 if worst <= TARGET_MB else 1


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return os.uname().machine


if __name__ == "__main__":
    sys.exit(main())
