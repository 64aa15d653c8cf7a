"""The hybrid's operating points, cheapest first, and the controller that walks them.

Each rung is a point on the measured rate-distortion envelope of the stream mode
(``tools/codec_ladder.py`` picks them from ``appliance codec eval --rungs candidates``
on the tuning clips; docs/codec.md has the curves). At the bottom the stream is 64² to
128² pixels at a third or half of the frame rate with no picture (its bytes buy more
as stream frames); from about 11 kbit/s a picture is fused in; from about 20 kbit/s
the stream is 256²; at the top it is the frame's full size, where there is nothing
left to fuse and the mode is plain SVT-AV1 low delay at our quantizer.

``kbps`` is what the rung cost on the tuning clips (their median, at 27.5 fps; the
full-size rungs per 512x512 frame): where to start, not a promise. The controller then
follows what the stream really costs: content decides the bits at a fixed quantizer (a
still face costs a third of a talking, moving one), and short clips pay their first
picture and key frame over few frames.
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
    Rung(64, 60, fps=10, picture_quality=0), Rung(64, 54, fps=15, picture_quality=0),
    Rung(96, 62, fps=15, picture_quality=0), Rung(96, 56, fps=15, picture_quality=0),
    Rung(96, 62, fps=15, picture_quality=20),
    Rung(128, 62, fps=15, picture_quality=20), Rung(128, 56, fps=15, picture_quality=0),
    Rung(128, 56, fps=15, picture_quality=20), Rung(128, 56, fps=15),
    Rung(128, 54, picture_quality=20), Rung(128, 54),
    Rung(176, 58, fps=15), Rung(176, 54), Rung(176, 48),
    Rung(256, 60), Rung(256, 54), Rung(256, 48),
    Rung(0, 60), Rung(0, 54), Rung(0, 48), Rung(0, 42), Rung(0, 36),
)  # fmt: skip

# From `tools/codec_ladder.py` on the tuning split (14 clips, 14 people), medians: the
# comment is each rung's median face MS-SSIM (native size) and how often it was on a
# clip's own envelope.
LADDER: tuple[Step, ...] = (
    Step(Rung(64, 60, fps=10, picture_quality=0), 3.5),  # 0.7872, on 14 of 14
    Step(Rung(96, 62, fps=15, picture_quality=0), 5.4),  # 0.8199, on 14 of 14
    Step(Rung(96, 56, fps=15, picture_quality=0), 6.9),  # 0.8677, on 13 of 14
    Step(Rung(128, 56, fps=15, picture_quality=0), 9.0),  # 0.9001, on 14 of 14
    Step(Rung(128, 56, fps=15, picture_quality=20), 11.5),  # 0.9146, on 14 of 14
    Step(Rung(128, 56, fps=15), 14.4),  # 0.9207, on 11 of 14
    Step(Rung(176, 58, fps=15), 15.5),  # 0.9296, on 14 of 14
    Step(Rung(128, 54, picture_quality=20), 17.0),  # 0.9298, on 8 of 14
    Step(Rung(128, 54), 19.5),  # 0.9352, on 7 of 14
    Step(Rung(256, 60), 20.6),  # 0.9504, on 10 of 14
    Step(Rung(256, 54), 28.8),  # 0.9609, on 9 of 14
    Step(Rung(256, 48), 39.0),  # 0.9715, on 5 of 14
    Step(Rung(0, 54), 103.9),  # 0.9766, on 11 of 14
    Step(Rung(0, 48), 156.4),  # 0.9850, on 11 of 14
    Step(Rung(0, 42), 279.1),  # 0.9907, on 14 of 14
    Step(Rung(0, 36), 1012.9),  # 0.9945, on 14 of 14
)

WINDOW_S = 2.0  # the rate is judged over this long
START_KBPS = 20.0
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

    Every ``WINDOW_S`` of frames it compares the bytes sent with the target: when over,
    down at once to the richest rung that fits, each rung's table cost scaled by how far
    the current rung's real cost is from its own; when under, one rung up if the next
    one, scaled alike, still fits. The window after a change is not judged (it holds
    the new key frame), so the rung never flaps frame to frame. It starts at the rung
    for ``START_KBPS`` at most and climbs from there.
    """

    def __init__(self, target_kbps: float, width: int, height: int, fps: float) -> None:
        if not target_kbps > 0:
            raise ValueError(f"target must be positive, got {target_kbps}")
        self.width, self.height, self.fps = width, height, fps
        self.target_kbps = float(target_kbps)
        # a cautious start (GCC's too): nobody knows yet what the network carries, and a
        # first second over it is a queue that takes seconds to drain
        self.index = start_rung(min(self.target_kbps, START_KBPS), width, height, fps)
        self._window = max(1, round(WINDOW_S * fps))
        self._sent: deque[tuple[int, int]] = deque()  # (frame index, bytes), one window
        self._judge_at: int | None = None  # the first frame index a judgement may come
        self.changes = 0

    @property
    def rung(self) -> Rung:
        return LADDER[self.index].rung

    def retarget(self, target_kbps: float) -> None:
        """A new target (the user's setting, or the bandwidth estimate): judged at once."""
        if target_kbps > 0 and target_kbps != self.target_kbps:
            self.target_kbps = float(target_kbps)
            self._judge_at = None

    def sent(self, frame_bytes: int, index: int) -> Rung:
        """What camera frame ``index`` cost (0 for a frame the rung skips); the rung for
        the next. The index may skip (the pipeline dropped frames): the rate is bytes
        over the span of frame indices, not over calls."""
        self._sent.append((index, frame_bytes))
        while self._sent and index - self._sent[0][0] >= self._window:
            self._sent.popleft()
        if self._judge_at is None:
            self._judge_at = self._sent[0][0] + self._window - 1
        if index < self._judge_at:
            return self.rung
        span = max(1, index - self._sent[0][0] + 1)
        actual = sum(b for _, b in self._sent) * 8 * self.fps / span / 1000
        expected = self._cost(self.index)
        ratio = actual / expected if expected > 0 else 1.0
        new = self.index
        if actual > self.target_kbps * OVER and self.index > 0:
            # down at once to the rung this content would fit at: an overshoot fills a
            # queue every frame it lasts (up, one rung at a time: GCC's asymmetry)
            fits = [i for i in range(self.index) if self._cost(i) * ratio <= self.target_kbps]
            new = fits[-1] if fits else 0
        elif (
            self.index + 1 < len(LADDER)
            and self._cost(self.index + 1) * ratio < self.target_kbps * UNDER
        ):
            new = self.index + 1
        if new != self.index:
            self.index = new
            self.changes += 1
            # the window after a change holds the new key frame: judged only after it
            self._sent.clear()
            self._judge_at = index + 2 * self._window
        return self.rung

    def _cost(self, index: int) -> float:
        return expected_kbps(LADDER[index], self.width, self.height, self.fps)
