"""What the dashboard shows besides the pipeline: temperatures and the links' state."""

from __future__ import annotations

from typing import Any

from appliance.hw.probe import probe_temperatures


def temperatures() -> list[dict[str, Any]]:
    """Each readable thermal zone in °C (a Jetson has CPU, GPU, SoC...; a VM often none)."""
    return [
        {"zone": t.type, "celsius": round(t.celsius, 1)}
        for t in probe_temperatures()
        if t.celsius is not None
    ]


def fleet_state(fleet: Any) -> dict[str, Any]:
    if fleet is None:
        return {"enabled": False, "connected": False}
    health = getattr(fleet, "health", None)
    if health is not None:  # the link's own account: refused payloads, restarts, problem
        return {"enabled": True, **health()}
    connected = getattr(fleet, "connected", None)
    return {"enabled": True, "connected": bool(connected is not None and connected.is_set())}
