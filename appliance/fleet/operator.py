"""The operator's side of the topic tree: desired configuration per camera, watched.

The operator owns the desired state: it keeps the last desired document per camera and
publishes it again (retained, QoS 1) after every reconnect, so a broker that restarted
and lost a retained message gets it back: no desired change is lost.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from appliance.fleet.topics import Topics, parse_broker


class Operator:
    def __init__(
        self,
        broker: str,
        username: str,
        password: str,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        prefix: str = "appliance",
        client_id: str = "operator",
    ) -> None:
        import paho.mqtt.client as mqtt

        self.prefix = prefix
        self.desired: dict[str, dict[str, Any]] = {}
        self.reported: dict[str, dict[str, Any]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.changed = threading.Condition()
        self.connects = 0
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username:
            client.username_pw_set(username, password or None)
        host, port, tls = parse_broker(broker)
        if tls:
            client.tls_set(
                ca_certs=ca_file or None, certfile=cert_file or None, keyfile=key_file or None
            )
        client.reconnect_delay_set(1, 8)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.connect_async(host, port, keepalive=15)
        self.client = client

    def start(self) -> None:
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def set_config(self, device: str, patch: dict[str, Any]) -> int:
        """Ask ``device`` for ``patch``; returns the desired version."""
        with self.changed:
            last = max(
                self.desired.get(device, {}).get("version", 0),
                self.reported.get(device, {}).get("version", 0),
            )
            document = {"version": last + 1, "config": patch}
            self.desired[device] = document
        self.client.publish(Topics(self.prefix, device).desired, json.dumps(document), 1, True)
        return int(document["version"])

    def wait_reported(self, device: str, version: int, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.reported.get(device, {}).get("version", -1) < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{device} did not report version {version}")
                self.changed.wait(left)
            return self.reported[device]

    def wait_status(self, device: str, online: bool, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.status.get(device, {}).get("online") is not online:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{device} never showed online={online}")
                self.changed.wait(left)
            return self.status[device]

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        self.connects += 1
        client.subscribe(
            [
                (f"{self.prefix}/+/status", 1),
                (f"{self.prefix}/+/config/reported", 1),
                (f"{self.prefix}/+/config/desired", 1),  # the versions other operators used
            ]
        )
        for device, document in list(self.desired.items()):  # re-assert what we want
            client.publish(Topics(self.prefix, device).desired, json.dumps(document), 1, True)

    def _on_message(self, _client: Any, _u: Any, message: Any) -> None:
        parts = message.topic.split("/")
        kind = "/".join(parts[-2:]) if parts[-2] == "config" else parts[-1]
        device = parts[-3] if parts[-2] == "config" else parts[-2]
        try:
            document = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(document, dict):
            return
        with self.changed:
            if kind == "status":
                self.status[device] = document
            elif kind == "config/reported":
                self.reported[device] = document
            elif kind == "config/desired":
                known = self.desired.get(device, {}).get("version", -1)
                if isinstance(document.get("version"), int) and document["version"] > known:
                    self.desired[device] = document
            self.changed.notify_all()

    def devices(self) -> list[str]:
        with self.changed:
            return sorted(set(self.status) | set(self.reported))
