"""What the fleet link reads from the broker: bounded JSON documents, both directions.

A desired config is a few kilobytes and three levels deep; a camera's status and
telemetry a few kilobytes and five deep. The bounds leave ample room for growth and
none for a payload built to exhaust memory or the parser's recursion (docs/security.md).
"""

from __future__ import annotations

from typing import Any

from appliance.untrusted import load_json

MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 16
# The broker is told (MQTT 5 Maximum Packet Size) to send nothing bigger: payload plus
# topic and properties.
MAX_PACKET = MAX_PAYLOAD + 4096


def load_payload(payload: bytes, what: str) -> Any:
    """A payload's JSON, bounded: UntrustedInputError (a ValueError) if it is not."""
    return load_json(payload, max_bytes=MAX_PAYLOAD, max_depth=MAX_DEPTH, what=what)
