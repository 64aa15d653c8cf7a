"""The operator's side of the topic tree: desired configuration per camera, watched.

The operator owns the desired state: it keeps the last desired document per camera and
publishes it again (retained, QoS 1) after every reconnect, so a broker that restarted
and lost a retained message gets it back: no desired change is lost.

Every camera's topics are outside input to the operator: a document is bounded before
it is parsed, one that is refused is kept as a note on that camera (``refused``) and
never stops the network thread, and fields are read by shape (``field``), so one
broken or hostile camera cannot break the listing or the commands for the others.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from appliance.fleet.payloads import load_payload
from appliance.fleet.topics import Topics, parse_broker

FINAL = ("done", "failed", "rolled_back")  # an update job's end states (ota.agent)


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
        self.ota: dict[str, dict[str, Any]] = {}
        self.responses: dict[tuple[str, str], dict[str, Any]] = {}  # (device, command)
        # (device, kind) -> why the last document of that kind was refused
        self.refused: dict[tuple[str, str], str] = {}
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
        # Belt and braces: _on_message catches what it expects; paho logs anything else
        # instead of ending its thread.
        client.suppress_exceptions = True
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
            last = max(version_of(self.desired.get(device)), version_of(self.reported.get(device)))
            version = last + 1
            document = {"version": version, "config": patch}
            self.desired[device] = document
        self.client.publish(Topics(self.prefix, device).desired, json.dumps(document), 1, True)
        return version

    def wait_reported(self, device: str, version: int, timeout: float = 10.0) -> dict[str, Any]:
        if not self._wait(lambda: version_of(self.reported.get(device), -1) >= version, timeout):
            raise TimeoutError(f"{device} did not report version {version}")
        return self.reported[device]

    def wait_status(self, device: str, online: bool, timeout: float = 10.0) -> dict[str, Any]:
        if not self._wait(lambda: self.status.get(device, {}).get("online") is online, timeout):
            raise TimeoutError(f"{device} never showed online={online}")
        return self.status[device]

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Whether ``done()`` came true (checked under ``changed``) within ``timeout``."""
        with self.changed:
            return self.changed.wait_for(done, timeout)

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        self.connects += 1
        every = Topics(self.prefix, "+")
        client.subscribe(
            [
                (every.status, 1),
                (every.reported, 1),
                (every.desired, 1),  # the versions other operators used
                (every.ota, 1),
                (every.telemetry, 0),  # keeps the health in ``status`` fresh
                (every.response("+"), 1),  # answers to our commands
            ]
        )
        for device, document in list(self.desired.items()):  # re-assert what we want
            client.publish(Topics(self.prefix, device).desired, json.dumps(document), 1, True)

    def _on_message(self, _client: Any, _u: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) < 3:
            return
        kind = "/".join(parts[-2:]) if parts[-2] == "config" else parts[-1]
        device = parts[-3] if parts[-2] in ("config", "response") else parts[-2]
        try:
            document = load_payload(message.payload, kind)
            if not isinstance(document, dict):
                raise ValueError(f"{kind} is not a JSON object")
        except ValueError as exc:
            with self.changed:
                self.refused[(device, kind)] = str(exc)[:200]
                self.changed.notify_all()
            return
        with self.changed:
            self.refused.pop((device, kind), None)
            if parts[-2] == "response":
                self.responses[(parts[-3], parts[-1])] = document
            elif kind == "status":
                self.status[device] = document
            elif kind == "telemetry":  # fresher health; "online" stays the status topic's
                online = self.status.get(device, {}).get("online")
                self.status[device] = {**document, "online": online}
            elif kind == "ota":
                self.ota[device] = document
            elif kind == "config/reported":
                self.reported[device] = document
            elif kind == "config/desired" and version_of(document, -1) > version_of(
                self.desired.get(device), -1
            ):
                self.desired[device] = document
            self.changed.notify_all()

    def devices(self) -> list[str]:
        with self.changed:
            refused = {device for device, _ in self.refused}
            return sorted(set(self.status) | set(self.reported) | refused)

    def refusals(self, device: str) -> list[str]:
        """Why documents of ``device`` were refused (``kind: reason``), oldest kinds first."""
        with self.changed:
            return [f"{k}: {why}" for (d, k), why in sorted(self.refused.items()) if d == device]

    # -- staged updates ------------------------------------------------------------------

    def command(self, device: str, name: str, payload: dict[str, Any], expiry_s: int = 60) -> None:
        """Send a command; the broker drops it if the camera is away for ``expiry_s``."""
        import paho.mqtt.properties as properties
        from paho.mqtt.packettypes import PacketTypes

        props = properties.Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = expiry_s
        props.ResponseTopic = Topics(self.prefix, device).response(name)
        props.CorrelationData = json.dumps(payload).encode()[:64]
        topic = Topics(self.prefix, device).command(name)
        self.client.publish(topic, json.dumps(payload), 1, False, props)

    def ask(
        self, device: str, name: str, payload: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send a command and wait for the camera's answer ({"ok": false, ...} if none)."""
        with self.changed:
            self.responses.pop((device, name), None)
        self.command(device, name, payload, expiry_s=max(1, round(timeout)))
        if not self._wait(lambda: (device, name) in self.responses, timeout):
            return {"ok": False, "error": f"{device} did not answer in {timeout:.0f} s"}
        with self.changed:
            return self.responses.pop((device, name))

    def wait_job(self, device: str, job: str, timeout: float) -> dict[str, Any]:
        """The camera's update status once job ``job`` has ended (or its last one seen)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                current = field(self.ota.get(device), "job") or {}
                if not isinstance(current, dict):
                    current = {}
                if current.get("id") == job and current.get("state") in FINAL:
                    return current
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"id": job, "state": "timeout", **({"last": current} if current else {})}
                self.changed.wait(left)

    def rollout(
        self,
        devices: list[str],
        source: str,
        canary: float = 0.1,
        max_failures: float = 0.0,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Update a canary share first; if more than ``max_failures`` of them fail, halt;
        else the rest. Returns each camera's job result and whether it halted."""
        order = sorted(set(devices))
        first = max(1, math.ceil(canary * len(order))) if order else 0
        stages = [order[:first], order[first:]]
        results: dict[str, dict[str, Any]] = {}
        job = f"rollout-{uuid.uuid4().hex[:8]}"
        for number, stage in enumerate(stages):
            for device in stage:
                self.command(device, "update", {"source": source, "job": job})
            for device in stage:
                results[device] = self.wait_job(device, job, timeout)
            failed = sum(results[d].get("state") != "done" for d in stage)
            if stage and failed / len(stage) > max_failures:
                skipped = [d for s in stages[number + 1 :] for d in s]
                return {
                    "job": job,
                    "halted": True,
                    "stage": number,
                    "results": results,
                    "not_started": skipped,
                }
        return {"job": job, "halted": False, "results": results, "not_started": []}


def field(document: Any, *keys: str) -> Any:
    """``document[k1][k2]...``, or None where a level is missing or not an object: a
    camera's documents are read by shape, never trusted to have it."""
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def version_of(document: Any, default: int = 0) -> int:
    """A desired/reported document's version, ``default`` if it has no valid one."""
    version = field(document, "version")
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return version
    return default
