"""The live settings of the align stage (``config.align``), pydantic-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.pipeline.stage import settings_from


@dataclass(frozen=True)
class AlignSettings:
    """Defaults are what the tests and the issue note's figures were measured with.

    Speeds are natural frequencies (rad/s) of critically damped springs: a step settles
    within 2% after 5.83 / speed seconds: pan 8 -> 0.73 s, zoom 4 -> 1.46 s, roll 12 ->
    0.49 s (roll is quicker: a talking head rolls at up to ~20 deg/s, and lag shows as a
    residual tilt).
    ``dead_band`` is a fraction of the crop size the face may wander before the crop
    re-centres; ``zoom_dead_band`` the relative change of the wanted crop size before it
    re-zooms. ``face_height`` is the wanted face height (chin to forehead) as a fraction
    of the crop height; ``face_row`` where the face centre sits, from the crop's top.
    ``lock``: which face leads, "largest" or "active" (the one whose mouth moved most
    lately: the talker); another face takes the lead only after ``dwell_s``.
    """

    enabled: bool = True
    framing: bool = True
    level: bool = True
    dead_band: float = 0.05
    zoom_dead_band: float = 0.12
    max_zoom: float = 3.0
    pan_speed: float = 8.0
    zoom_speed: float = 4.0
    roll_speed: float = 12.0
    face_height: float = 0.36
    face_row: float = 1.0 / 3.0
    max_roll_deg: float = 15.0
    roll_dead_band_deg: float = 0.5
    lost_hold_s: float = 2.0
    widen_s: float = 4.0
    group: bool = True
    dwell_s: float = 1.0
    lock: str = "largest"
    eye_contact: bool = False
    eye_contact_max_deg: float = 20.0
    frontalize: bool = False
    frontalize_max_deg: float = 15.0
    output_width: int | None = None
    output_height: int | None = None

    @classmethod
    def from_config(cls, config: Any, current: AlignSettings | None = None) -> AlignSettings:
        """Fields of ``config.align`` where present, else ``current``'s (or defaults)."""
        return settings_from(cls, getattr(config, "align", None), current)
