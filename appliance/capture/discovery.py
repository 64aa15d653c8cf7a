"""The ranked list of sources to try: what ``auto`` means on this machine."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _video_nodes() -> list[tuple[str, str]]:
    """(device path, card name) of every capture-capable V4L2 node."""
    try:
        from appliance.capture.v4l2 import describe_capture_devices
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        log.debug("no V4L2 discovery: %s", exc)
        return []
    return describe_capture_devices()


def auto_candidates(
    nodes: Callable[[], list[tuple[str, str]]] = _video_nodes, fallback: list[str] | None = None
) -> list[str]:
    """CSI sensors first, then USB cameras, then the fallbacks (synthetic by default).

    On a Jetson each CSI sensor also shows up as a V4L2 node named ``vi-output, <sensor>``
    delivering raw Bayer: it is used through Argus (``csi://N``), never as a USB camera.
    """
    csi: list[str] = []
    usb: list[str] = []
    for path, card in nodes():
        if card.startswith("vi-output"):
            csi.append(f"csi://{len(csi)}")
        else:
            usb.append(f"v4l2://{path}")
    tail = fallback if fallback is not None else ["synthetic://"]
    return [*csi, *usb, *(uri for uri in tail if uri not in csi + usb)]


def candidates_for(uri: str, fallback: list[str]) -> Callable[[], list[str]]:
    """A function giving the current candidates (``auto`` changes as cameras come and go)."""
    if uri == "auto":
        return lambda: auto_candidates(fallback=fallback)
    ranked = [uri, *(f for f in fallback if f != uri)]
    return lambda: ranked
