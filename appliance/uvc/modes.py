"""The modes the camera offers, from the board profile: one table for the descriptors
written to configfs and for the probe/commit answers, so the two can never disagree."""

from __future__ import annotations

from appliance.hw.profile import UvcSpec
from appliance.uvc.protocol import Mode

FOURCC = {"mjpeg": "MJPG", "yuyv": "YUYV"}
INTERVAL_UNITS_PER_S = 10_000_000  # UVC intervals are in 100 ns


def interval_of(fps: float) -> int:
    return round(INTERVAL_UNITS_PER_S / fps)


def max_frame_bytes(width: int, height: int) -> int:
    """YUYV frames are exactly 2 bytes a pixel; an MJPEG frame gets the same ceiling
    (the encoder lowers its quality rather than exceed it)."""
    return width * height * 2


def modes_for(spec: UvcSpec) -> list[Mode]:
    """Every (format, frame size) in descriptor order, with 1-based indices.

    One streaming header serves full, high and super speed in configfs, so the modes are
    the profile's as written (validated against its ``usb_speed``).
    """
    modes = []
    for f_index, fmt in enumerate(spec.formats, start=1):
        for r_index, frame in enumerate(fmt.frames, start=1):
            modes.append(
                Mode(
                    format_index=f_index,
                    frame_index=r_index,
                    fourcc=FOURCC[fmt.format],
                    width=frame.width,
                    height=frame.height,
                    intervals=tuple(interval_of(fps) for fps in frame.fps),
                    max_frame_bytes=max_frame_bytes(frame.width, frame.height),
                )
            )
    return modes
