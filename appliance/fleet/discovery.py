"""Home Assistant MQTT discovery (``fleet.home_assistant``): the camera shows up in Home
Assistant as a device with its sensors, no YAML on that side.

One retained config message per entity under ``<discovery prefix>/<component>/<device>/
<entity>/config``. The states are the camera's own topics: the telemetry document
(read with Jinja templates, as Home Assistant renders them) and the status topic for
availability, so nothing is published twice.
"""

from __future__ import annotations

from typing import Any

from appliance.fleet.topics import Topics

# (component, entity, name, value template, extra fields)
ENTITIES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("sensor", "fps", "Frame rate", "{{ value_json.pipeline.fps }}",
     {"unit_of_measurement": "fps", "state_class": "measurement"}),
    ("sensor", "latency", "Latency", "{{ value_json.pipeline.latency.p50_ms }}",
     {"unit_of_measurement": "ms", "state_class": "measurement"}),
    ("binary_sensor", "problem", "Problem", "{{ 'OFF' if value_json.healthy else 'ON' }}",
     {"device_class": "problem"}),
    ("sensor", "usb_host", "USB host",
     "{{ value_json.uvc.udc_state if value_json.uvc.udc_state is defined else 'off' }}", {}),
    ("sensor", "model_update", "Model update",
     "{{ value_json.models.updates.state if value_json.models.updates else 'off' }}", {}),
]  # fmt: skip


def discovery_messages(
    topics: Topics, name: str, version: str, prefix: str = "homeassistant"
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, retained config document) for every entity of this camera."""
    device_key = f"appliance_{topics.device}"
    device = {
        "identifiers": [device_key],
        "name": name,
        "manufacturer": "Appliance project",
        "model": "AI conference camera",
        "sw_version": version,
    }
    availability = {
        "topic": topics.status,
        "value_template": "{{ 'online' if value_json.online else 'offline' }}",
    }
    messages = []
    for component, entity, label, template, extra in ENTITIES:
        document = {
            "name": label,
            "unique_id": f"{device_key}_{entity}",
            "state_topic": topics.telemetry,
            "value_template": template,
            "availability": [availability],
            "device": device,
            **extra,
        }
        messages.append((f"{prefix}/{component}/{topics.device}/{entity}/config", document))
    return messages
