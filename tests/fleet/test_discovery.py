"""Home Assistant discovery through the real broker: the camera announces its entities
(retained, in its own ACL'd corner of homeassistant/), and their templates render
against the telemetry the camera really sends, as Home Assistant's Jinja would."""

from __future__ import annotations

import json
import ssl
import threading

import jinja2
import paho.mqtt.client as mqtt

from appliance.app import Appliance
from appliance.config import ConfigManager
from tests.conftest import wait_until

from .test_fleet import daemon_config


def listener(broker, topics: list[str]) -> tuple[mqtt.Client, dict[str, dict]]:
    seen: dict[str, dict] = {}
    lock = threading.Lock()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("operator", broker.password("operator"))
    cert, key = broker.cert("operator")
    client.tls_set(str(broker.ca), str(cert), str(key), cert_reqs=ssl.CERT_REQUIRED)

    def on_message(_c, _u, message) -> None:
        with lock:
            seen[message.topic] = json.loads(message.payload)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
    client.connect("127.0.0.1", broker.operator_port)
    client.loop_start()
    return client, seen


def test_the_camera_appears_in_home_assistant_with_working_templates(broker, tmp_path):
    config = daemon_config(broker, tmp_path, fleet={"home_assistant": True})
    app = Appliance(ConfigManager(config, tmp_path / "config.yaml"), web=False)
    client, seen = listener(broker, ["homeassistant/#", "appliance/cam1/#"])
    app.start()
    try:
        assert wait_until(lambda: len([t for t in seen if t.startswith("homeassistant/")]) == 5)
        assert wait_until(lambda: "appliance/cam1/telemetry" in seen, 10.0)
        telemetry = seen["appliance/cam1/telemetry"]
        status = seen["appliance/cam1/status"]
        entities = sorted(t for t in seen if t.startswith("homeassistant/"))
        assert entities == [
            "homeassistant/binary_sensor/cam1/problem/config",
            "homeassistant/sensor/cam1/fps/config",
            "homeassistant/sensor/cam1/latency/config",
            "homeassistant/sensor/cam1/model_update/config",
            "homeassistant/sensor/cam1/usb_host/config",
        ]
        env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        values = {}
        for topic in entities:
            entity = seen[topic]
            assert entity["state_topic"] == "appliance/cam1/telemetry"
            assert entity["device"]["identifiers"] == ["appliance_cam1"]
            assert entity["device"]["name"] == "Conference camera"
            availability = entity["availability"][0]
            assert availability["topic"] == "appliance/cam1/status"
            assert env.from_string(availability["value_template"]).render(value_json=status) == (
                "online"
            )
            values[topic.split("/")[3]] = env.from_string(entity["value_template"]).render(
                value_json=telemetry
            )
        assert float(values["fps"]) == telemetry["pipeline"]["fps"]
        assert float(values["latency"]) >= 0
        assert values["problem"] == ("OFF" if telemetry["healthy"] else "ON")
        assert values["usb_host"] == "off" and values["model_update"] == "off"
    finally:
        assert app.stop(3.0) == []
        client.loop_stop()
        client.disconnect()
