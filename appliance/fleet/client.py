"""The camera's MQTT 5 client (paho-mqtt 2.x): availability, shadow, commands, telemetry.

- Availability: ``status`` is retained; the last will (QoS 1, retained) says offline, so
  a camera that dies or drops off the network is marked offline by the broker itself.
- After every (re)connect the full state is sent again: online, the reported config,
  and the subscriptions (clean start: the broker keeps nothing for us), so a broker
  that restarted, or lost its state, is in sync at once.
- Reconnects: paho's exponential back-off, from a per-camera random base, so a fleet
  that lost its broker does not come back in lockstep.
- Commands: request/response with the MQTT 5 response topic and correlation data;
  the operator sets a message expiry, so the broker drops commands that went stale
  while the camera was away instead of firing them late.
- Hostile payloads: the broker is told the largest packet we take (MQTT 5 Maximum
  Packet Size: it drops bigger ones), every document is bounded in size and depth
  before it is parsed (``appliance.untrusted``), and no callback lets an exception
  into paho's network thread; should that thread die anyway, it is started again and
  the reason shows in the status.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.manager import ConfigManager
from appliance.fleet.payloads import MAX_PACKET, load_payload
from appliance.fleet.shadow import Shadow
from appliance.fleet.topics import Topics, parse_broker
from appliance.logs import Throttle

log = logging.getLogger(__name__)

MAX_SECRET_BYTES = 4096  # a broker password file: one line
RESTART_PAUSE_S = 1.0  # between a crashed network loop and the next one


def read_secret(path: str) -> str:
    """The first line of a small secret file (a larger file is a misconfiguration)."""
    with open(path, "rb") as file:
        data = file.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{path}: more than {MAX_SECRET_BYTES} bytes: not a password file")
    return data.decode("utf-8").strip()


StatusFn = Callable[[], dict[str, Any]]
# installs an update: (source path or URL, job id) -> the update agent's status
Updater = Callable[[str, str], dict[str, Any]]


@dataclass(frozen=True)
class FleetSettings:
    broker: str
    device_id: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    topic_prefix: str = "appliance"
    telemetry_s: float = 10.0
    home_assistant: bool = False
    name: str = "Conference camera"  # what people call it (Home Assistant's device name)

    @classmethod
    def from_config(cls, section: Any, name: str = "Conference camera") -> FleetSettings:
        password = read_secret(section.password_file) if section.password_file else ""
        return cls(
            section.broker,
            section.device_id or socket.gethostname().lower(),
            section.username,
            password,
            section.ca_file,
            section.cert_file,
            section.key_file,
            section.topic_prefix,
            section.telemetry_s,
            section.home_assistant,
            name,
        )


class FleetClient:
    def __init__(
        self,
        manager: ConfigManager,
        settings: FleetSettings,
        status: StatusFn = dict,
        state_file: Path | None = None,
        updater: Updater | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.device_id)
        self.shadow = Shadow(manager, state_file)
        self.status = status
        self.updater = updater
        self._handlers: dict[str, Callable[[Any], dict[str, Any]]] = {}
        self._updating = threading.Lock()
        self.connected = threading.Event()
        self.connects = 0
        self._stop = threading.Event()
        self._telemetry: threading.Thread | None = None
        self._network: threading.Thread | None = None
        self.refused = 0  # payloads refused (too big, too deep, not JSON, not valid)
        self.errors = 0  # exceptions caught in our callbacks
        self.network_restarts = 0
        self.last_error = ""
        self._error_log = Throttle(1.0)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.device_id,
            protocol=mqtt.MQTTv5,
        )
        host, port, tls = parse_broker(settings.broker)
        self._address = (host, port)
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if tls:
            client.tls_set(
                ca_certs=settings.ca_file or None,
                certfile=settings.cert_file or None,
                keyfile=settings.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.will_set(self.topics.status, _json({"online": False}), qos=1, retain=True)
        base = random.uniform(0.5, 1.5)  # jitter: cameras do not all return at once
        client.reconnect_delay_set(min_delay=max(1, round(base)), max_delay=60)
        client.on_connect = self._guarded(self._on_connect)
        client.on_disconnect = self._guarded(self._on_disconnect)
        client.message_callback_add(self.topics.desired, self._guarded(self._on_desired))
        client.message_callback_add(self.topics.commands, self._guarded(self._on_command))
        self.client = client

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        import paho.mqtt.properties as properties
        from paho.mqtt.packettypes import PacketTypes

        connect = properties.Properties(PacketTypes.CONNECT)
        connect.MaximumPacketSize = MAX_PACKET
        self.client.connect_async(*self._address, keepalive=15, properties=connect)
        self._network = threading.Thread(target=self._network_loop, name="fleet-mqtt")
        self._network.daemon = True
        self._network.start()
        self._telemetry = threading.Thread(target=self._telemetry_loop, name="fleet-telemetry")
        self._telemetry.daemon = True
        self._telemetry.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Say offline (a clean goodbye does not fire the will) and disconnect."""
        self._stop.set()
        if self.connected.is_set():
            info = self.client.publish(self.topics.status, _json({"online": False}), 1, True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # the link went as we said goodbye:
                log.info("fleet: goodbye not sent (%s); the will says offline", exc)
        self.client.disconnect()
        if self._network is not None:
            self._network.join(timeout)
        if self._telemetry is not None:
            self._telemetry.join(timeout)

    def _network_loop(self) -> None:
        """paho's loop, on our own thread: should it ever raise, the reason is kept for
        the status and the loop runs again (it reconnects), instead of the link dying
        silently while the camera still says it is online."""
        while not self._stop.is_set():
            try:
                self.client.loop_forever(retry_first_connection=True)
                return  # disconnect() was called
            except Exception as exc:
                self.network_restarts += 1
                self._note_error(f"network loop: {type(exc).__name__}: {exc}")
                if self._stop.wait(RESTART_PAUSE_S):
                    return
                # paho may have stopped mid-packet: start over on a fresh connection (a
                # broker that is away is retried by the loop, with back-off)
                with contextlib.suppress(Exception):
                    self.client.reconnect()

    def health(self) -> dict[str, Any]:
        """The link as the status shows it; ``problem`` is why it is not working, or None."""
        alive = self._network is not None and self._network.is_alive()
        problem = None
        if self._network is not None and not alive and not self._stop.is_set():
            problem = f"fleet link: network thread stopped ({self.last_error or 'no reason'})"
        return {
            "connected": self.connected.is_set(),
            "network_thread": alive,
            "network_restarts": self.network_restarts,
            "refused": self.refused,
            "errors": self.errors,
            "last_error": self.last_error or None,
            "problem": problem,
        }

    # -- keeping hostile input out of paho's thread -------------------------------------

    def _guarded(self, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback`` that never raises into paho's network thread: an exception is
        counted, kept for the status and logged (at most once a second)."""

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception as exc:
                self.errors += 1
                self._note_error(f"{callback.__name__}: {type(exc).__name__}: {exc}")

        return guarded

    def _note_error(self, text: str) -> None:
        self.last_error = text[:300]
        if self._error_log.ready():
            log.error("fleet: %s", self.last_error)

    # -- callbacks (paho's network thread) --------------------------------------------

    def _on_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("fleet: broker refused the connection: %s", reason)
            return
        self.connects += 1
        client.subscribe([(self.topics.desired, 1), (self.topics.commands, 1)])
        client.publish(self.topics.status, _json({"online": True, **self._summary()}), 1, True)
        client.publish(self.topics.reported, _json(self.shadow.reported()), 1, True)
        if self.settings.home_assistant:
            from appliance import __version__
            from appliance.fleet.discovery import discovery_messages

            for topic, document in discovery_messages(self.topics, self.settings.name, __version__):
                client.publish(topic, _json(document), 1, True)
        self.connected.set()
        log.info("fleet: connected to %s as %s", self.settings.broker, self.settings.device_id)

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("fleet: disconnected (%s); reconnecting", reason)

    def _on_desired(self, client: Any, _userdata: Any, message: Any) -> None:
        report = self.shadow.desired(message.payload)
        if not report.get("accepted", True):
            self.refused += 1
        client.publish(self.topics.reported, _json(report), 1, True)

    def _on_command(self, client: Any, _userdata: Any, message: Any) -> None:
        import paho.mqtt.properties as properties
        from paho.mqtt.packettypes import PacketTypes

        name = message.topic.rsplit("/", 1)[-1]
        answer = self._command(name, message.payload)
        request = message.properties
        topic = getattr(request, "ResponseTopic", None)
        if not topic:
            log.warning("fleet: command %s without a response topic, not answered", name)
            return
        props = properties.Properties(PacketTypes.PUBLISH)
        correlation = getattr(request, "CorrelationData", None)
        if correlation is not None:
            props.CorrelationData = correlation
        client.publish(topic, _json(answer), 1, False, props)

    def _command(self, name: str, payload: bytes) -> dict[str, Any]:
        if name == "ping":
            return {"ok": True}
        if name == "status":
            return {"ok": True, "status": self.status()}
        if name == "config":
            return {"ok": True, **self.shadow.reported()}
        if name == "update":
            return self._start_update(payload)
        handler = self._handlers.get(name)
        if handler is not None:
            try:
                return handler(load_payload(payload, f"cmd/{name}"))
            except (ValueError, TypeError, KeyError) as exc:
                self.refused += 1
                return {"ok": False, "error": str(exc)[:300]}
        known = ", ".join(["ping", "status", "config", "update", *self._handlers])
        return {"ok": False, "error": f"unknown command {name!r}: {known}"}

    def handle(self, name: str, handler: Callable[[Any], dict[str, Any]]) -> None:
        """Answer ``cmd/<name>`` with ``handler(JSON payload)`` (on paho's thread: quick
        work only); a ValueError, TypeError or KeyError it raises is the answer's error."""
        self._handlers[name] = handler

    def _start_update(self, payload: bytes) -> dict[str, Any]:
        """Run the update agent on its own thread (never paho's); its status goes to the
        retained ``ota`` topic when the job starts and when it ends."""
        if self.updater is None:
            return {"ok": False, "error": "this camera takes no updates over MQTT"}
        try:
            request = load_payload(payload, "cmd/update")
            source, job = str(request["source"]), str(request["job"])
        except (ValueError, KeyError, TypeError):
            self.refused += 1
            return {"ok": False, "error": 'update needs {"source": URL, "job": ID}'}
        if not self._updating.acquire(blocking=False):
            return {"ok": False, "error": "an update is already running"}
        updater = self.updater

        def run() -> None:
            try:
                self.publish_ota({"state": "download", "job": {"id": job, "state": "download"}})
                try:
                    status = updater(source, job)
                except Exception as exc:  # the agent refused to start: say why
                    status = {
                        "state": "idle",
                        "job": {"id": job, "state": "failed", "result": "error", "error": str(exc)},
                    }
                self.publish_ota(status)
            finally:
                self._updating.release()

        threading.Thread(target=run, name="fleet-update", daemon=True).start()
        return {"ok": True, "job": job}

    def publish_ota(self, status: dict[str, Any]) -> None:
        self.client.publish(self.topics.ota, _json(status), 1, True)

    # -- telemetry --------------------------------------------------------------------

    def _telemetry_loop(self) -> None:
        publish = self._guarded(self._publish_telemetry)  # a failure must not end the loop
        while not self._stop.wait(self.settings.telemetry_s):
            if self.connected.is_set():
                publish()

    def _publish_telemetry(self) -> None:
        self.client.publish(self.topics.telemetry, _json(self._summary()), 0, False)

    def _summary(self) -> dict[str, Any]:
        try:
            return dict(self.status())
        except Exception as exc:  # a status that fails must not take the link down
            return {"status_error": str(exc)}


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()
