"""Board profiles (``hw/*.yaml``), board detection and the hardware probe.

The daemon calls :func:`detect_board` and :func:`probe` once at start-up and picks each
part's backend from the report; nothing below ``appliance.hw`` imports jetson_utils,
TensorRT or CUDA at import time.
"""

from appliance.hw.probe import HardwareReport, PartReport, probe
from appliance.hw.profile import (
    GENERIC_PROFILE,
    BoardProfile,
    ProfileError,
    UvcSpec,
    default_profiles_dir,
    detect_board,
    load_profile,
    load_profiles,
)

__all__ = [
    "GENERIC_PROFILE",
    "BoardProfile",
    "HardwareReport",
    "PartReport",
    "ProfileError",
    "UvcSpec",
    "default_profiles_dir",
    "detect_board",
    "load_profile",
    "load_profiles",
    "probe",
]
