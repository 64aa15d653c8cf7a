"""The hybrid's operating points, cheapest first, and the controller that walks them.

Each rung is a point on the measured rate-distortion envelope of the stream mode
(``appliance codec ladder`` measures them; docs/codec.md, "The hybrid", has the curves):
below about 8 kbit/s the stream runs at half the frame rate, from about 18 kbit/s at
half the frame's side, and from about 35 kbit/s at its full size, where there is
nothing left to fuse and the mode is plain SVT-AV1 low delay at our quantizer. The
keypoints-only mode (the mesh warp) stays below the ladder's first rung.

``kbps`` is what the rung cost on the tuning clips at 512x512 and 25-30 fps, scaled
to a stream by its frame area and rate: where to start, not a promise. The controller
then follows what the stream really costs: content decides the bits at a fixed
quantizer (a still face costs a third of a talking, moving one).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from appliance.codec.hybrid import Rung
from appliance.codec.lowres import low_size

REFERENCE_AREA = 512 * 512  # the full-size rungs' figures are for this frame area
REFERENCE_FPS = 27.5


@dataclass(frozen=True)
class Step:
    rung: Rung
    kbps: float  # measured (median of the tuning clips) at REFERENCE_FPS


# What ``appliance codec eval --rungs candidates`` runs on the tuning clips; the ladder
# is the envelope of their medians (tools/codec_ladder.py).
CANDIDATES: tuple[Rung, ...] = (
    Rung(96, 62, step=2), Rung(96, 56, step=2), Rung(96, 50, step=2),
    Rung(128, 62, step=2), Rung(128, 56, step=2), Rung(128, 60), Rung(128, 54), Rung(128, 48),
    Rung(176, 58, step=2), Rung(176, 60), Rung(176, 54), Rung(176, 48),
    Rung(256, 60), Rung(256, 54), Rung(256, 48),
    Rung(0, 60), Rung(0, 54), Rung(0, 48), Rung(0, 42), Rung(0, 36),
)  # fmt: skip

LADDER: tuple[Step, ...] = (
    Step(Rung(96, 62, step=2), 5.0),
    Step(Rung(128, 56, step=2), 9.0),
    Step(Rung(128, 54), 14.0),
    Step(Rung(176, 54), 20.0),
    Step(Rung(256, 54), 30.0),
    Step(Rung(0, 54), 50.0),
    Step(Rung(0, 48), 75.0),
    Step(Rung(0, 42), 120.0),
    Step(Rung(0, 36), 190.0),
)

WINDOW_S = 2.0  # the rate is judged over this long
OVER = 1.10  # above target * OVER: a rung down
UNDER = 0.80  # a rung up when its expected cost stays below target * UNDER


def expected_kbps(step: Step, width: int, height: int, fps: float) -> float:
    """The step's table figure for this stream: its pixels and frame rate."""
    low = low_size(width, height, step.rung.side)
    area = REFERENCE_AREA if step.rung.side == 0 else step.rung.side**2
    return step.kbps * (low[0] * low[1] / area) * (fps / REFERENCE_FPS)


def start_rung(target_kbps: float, width: int, height: int, fps: float) -> int:
    """The index of the richest rung expected to fit ``target_kbps`` (0 if none does)."""
    fits = [
        i for i, step in enumerate(LADDER) if expected_kbps(step, width, height, fps) <= target_kbps
    ]
    return fits[-1] if fits else 0


class RateController:
    """Picks the rung for a target rate from what the stream actually sends.

    Every ``WINDOW_S`` of frames it compares the bytes sent with the target: a rung down
    when over, a rung up when the next one, scaled by how far the current rung's real
    cost is from its table figure, still fits. The window after a change is not judged
    (it holds the new key frame), so the rung never flaps frame to frame.
    """

    def __init__(self, target_kbps: float, width: int, height: int, fps: float) -> None:
        if not target_kbps > 0:
            raise ValueError(f"target must be positive, got {target_kbps}")
        self.width, self.height, self.fps = width, height, fps
        self.target_kbps = float(target_kbps)
        self.index = start_rung(self.target_kbps, width, height, fps)
        self._window = max(1, round(WINDOW_S * fps))
        self._bytes: deque[int] = deque(maxlen=self._window)
        self._settle = self._window  # frames before the next judgement
        self.changes = 0

    @property
    def rung(self) -> Rung:
        return LADDER[self.index].rung

    def retarget(self, target_kbps: float) -> None:
        """A new target (the user's setting, or the bandwidth estimate): judged at once."""
        if target_kbps > 0 and target_kbps != self.target_kbps:
            self.target_kbps = float(target_kbps)
            self._settle = 0

    def sent(self, frame_bytes: int) -> Rung:
        """What one camera frame cost (0 for a frame the rung skips); the rung for the next."""
        self._bytes.append(frame_bytes)
        self._settle -= 1
        if self._settle > 0 or len(self._bytes) < self._window:
            return self.rung
        actual = sum(self._bytes) * 8 * self.fps / len(self._bytes) / 1000
        expected = expected_kbps(LADDER[self.index], self.width, self.height, self.fps)
        ratio = actual / expected if expected > 0 else 1.0
        move = 0
        if actual > self.target_kbps * OVER and self.index > 0:
            move = -1
        elif self.index + 1 < len(LADDER):
            richer = expected_kbps(LADDER[self.index + 1], self.width, self.height, self.fps)
            if richer * ratio < self.target_kbps * UNDER:
                move = 1
        if move:
            self.index += move
            self.changes += 1
            self._bytes.clear()
            self._settle = self._window
        return self.rung
