"""The topic tree, one subtree per camera, and the broker address.

``<prefix>/<device>/``

====================  ========  =======================================================
status                retained  {"online": bool, ...}; the last will says offline
config/desired        retained  {"version": n, "config": {partial}}: the operator's wish
config/reported       retained  {"version": n, "accepted": bool, "errors": [...],
                                "config": {full}}: what the camera runs
telemetry             QoS 0     fps, per-stage latency, temperatures, model versions
ota                   retained  the update agent's status: job id, state, result
cmd/<name>            request   MQTT 5 response topic + correlation data, message expiry
====================  ========  =======================================================

Per-device ACLs on the broker give each camera its own subtree and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


def parse_broker(uri: str) -> tuple[str, int, bool]:
    """``mqtts://HOST:PORT`` or ``mqtt://HOST:PORT`` -> (host, port, tls)."""
    parts = urlsplit(uri)
    default = {"mqtt": 1883, "mqtts": 8883}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    if default is None or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"{uri!r} is not mqtts://HOST:PORT or mqtt://HOST:PORT")
    return parts.hostname, port, parts.scheme == "mqtts"


@dataclass(frozen=True)
class Topics:
    prefix: str
    device: str

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.device}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def desired(self) -> str:
        return f"{self.root}/config/desired"

    @property
    def reported(self) -> str:
        return f"{self.root}/config/reported"

    @property
    def telemetry(self) -> str:
        return f"{self.root}/telemetry"

    @property
    def ota(self) -> str:
        """Retained: the update agent's status (its job's id, state and result)."""
        return f"{self.root}/ota"

    @property
    def commands(self) -> str:
        return f"{self.root}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    def response(self, name: str) -> str:
        """Where a command's answer goes: the camera's own subtree (its ACL allows it)."""
        return f"{self.root}/response/{name}"
