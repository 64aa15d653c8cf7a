"""What the dashboard shows besides the pipeline: temperatures and the links' state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

THERMAL = Path("/sys/class/thermal")


def temperatures(root: Path = THERMAL) -> list[dict[str, Any]]:
    """Each thermal zone in °C (a Jetson has CPU, GPU, SoC...; a VM often none)."""
    zones = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            name = (zone / "type").read_text().strip()
            celsius = int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue  # some zones refuse reads while their sensor sleeps
        zones.append({"zone": name, "celsius": round(celsius, 1)})
    return zones


def fleet_state(fleet: Any) -> dict[str, Any]:
    if fleet is None:
        return {"enabled": False, "connected": False}
    connected = getattr(fleet, "connected", None)
    return {"enabled": True, "connected": bool(connected is not None and connected.is_set())}


def uvc_state(status: dict[str, Any], daemon: Any) -> Any:
    """The USB webcam side, when the daemon reports it (older daemons do not)."""
    if "uvc" in status:
        return status["uvc"]
    gadget = getattr(daemon, "uvc", None)
    if gadget is not None and hasattr(gadget, "status"):
        return gadget.status()
    return None
