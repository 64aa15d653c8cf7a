"""The hybrid's operating points, cheapest first, and the controller that walks them.

Every candidate rung was measured on the tuning clips (``appliance codec eval --rungs
candidates``; ``tools/codec_ladder.py`` turns that into ``TABLE``). A stream's ladder is
picked from the table for its frame size (``ladder_for``): at the bottom the stream is
64² to 128² pixels at 10 or 15 fps with no picture (its bytes buy more as stream
frames); then a picture is fused in; then the stream is 256²; at the top it is the
frame's full size, where there is nothing left to fuse and the mode is plain SVT-AV1
low delay at our quantizer. On a small frame the full size comes early (from about
11 kbit/s at 320x240), on a large one late.

``kbps`` is what the rung cost on the tuning clips (their median, scaled to side²
pixels, the full-size rungs to 512x512, and 27.5 fps): where to start, not a promise.
The controller then follows what the stream really costs: content decides the bits at
a fixed quantizer (a still face costs a third of a talking, moving one), and short
clips pay their first picture and key frame over few frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from appliance.codec.hybrid import Rung
from appliance.codec.lowres import low_size

REFERENCE_AREA = 512 * 512  # the full-size rungs' figures are for this frame area
REFERENCE_FPS = 27.5
# At a fixed quantizer the bits grow far slower than the pixels: fitted on the tuning
# clips (59,520 to 262,144 pixels), the full-size rungs cost pixels**0.26 to **0.32
# (tools/codec_ladder.py prints the fit; content spreads it by a factor of 1.5).
ALPHA = 0.3


@dataclass(frozen=True)
class Step:
    rung: Rung
    kbps: float  # tuning clips median, at REFERENCE_FPS and side² pixels (full: REFERENCE_AREA)
    ms_ssim: float  # median face MS-SSIM (native size) of the tuning clips


# What ``appliance codec eval --rungs candidates`` runs on the tuning clips.
CANDIDATES: tuple[Rung, ...] = (
    Rung(64, 60, fps=10, picture_quality=0), Rung(64, 54, fps=15, picture_quality=0),
    Rung(96, 62, fps=15, picture_quality=0), Rung(96, 56, fps=15, picture_quality=0),
    Rung(96, 62, fps=15, picture_quality=20),
    Rung(128, 62, fps=15, picture_quality=20), Rung(128, 56, fps=15, picture_quality=0),
    Rung(128, 56, fps=15, picture_quality=20), Rung(128, 56, fps=15),
    Rung(128, 54, picture_quality=20), Rung(128, 54),
    Rung(176, 58, fps=15), Rung(176, 54), Rung(176, 48),
    Rung(256, 60, fps=15), Rung(256, 54, fps=15),
    Rung(256, 63), Rung(256, 60), Rung(256, 54), Rung(256, 48),
    Rung(0, 63, fps=7.5), Rung(0, 63, fps=10), Rung(0, 63, fps=15), Rung(0, 60, fps=15),
    Rung(0, 57, fps=15), Rung(0, 63), Rung(0, 60), Rung(0, 57), Rung(0, 54), Rung(0, 48),
    Rung(0, 42), Rung(0, 36),
)  # fmt: skip

# From `tools/codec_ladder.py` on the tuning split (14 clips, 14 people): every
# candidate's medians, cheapest first; the comment says on how many clips it was on
# that clip's own envelope. A stream's ladder is picked from it for its frame size
# (``ladder_for``): a full-size rung is cheap on a small frame and dear on a large one.
TABLE: tuple[Step, ...] = (
    Step(Rung(64, 60, fps=10, picture_quality=0), 4.0, 0.7881),  # on 14 of 14
    Step(Rung(96, 62, fps=15, picture_quality=0), 5.1, 0.8199),  # on 14 of 14
    Step(Rung(64, 54, fps=15, picture_quality=0), 5.4, 0.8257),  # on 9 of 14
    Step(Rung(96, 56, fps=15, picture_quality=0), 6.6, 0.8677),  # on 14 of 14
    Step(Rung(96, 62, fps=15, picture_quality=20), 7.7, 0.8651),  # on 4 of 14
    Step(Rung(128, 56, fps=15, picture_quality=0), 8.2, 0.9001),  # on 11 of 14
    Step(Rung(128, 62, fps=15, picture_quality=20), 8.6, 0.8933),  # on 6 of 14
    Step(Rung(128, 56, fps=15, picture_quality=20), 10.4, 0.9136),  # on 7 of 14
    Step(Rung(0, 63, fps=7.5), 11.7, 0.9183),  # on 11 of 14
    Step(Rung(128, 56, fps=15), 13.1, 0.9195),  # on 4 of 14
    Step(Rung(176, 58, fps=15), 14.1, 0.9286),  # on 3 of 14
    Step(Rung(0, 63, fps=10), 14.3, 0.9299),  # on 2 of 14
    Step(Rung(256, 60, fps=15), 14.7, 0.9405),  # on 1 of 14
    Step(Rung(0, 63, fps=15), 14.8, 0.9326),  # on 13 of 14
    Step(Rung(128, 54, picture_quality=20), 17.0, 0.9295),  # on 3 of 14
    Step(Rung(256, 63), 18.7, 0.9382),  # on 1 of 14
    Step(Rung(0, 60, fps=15), 18.8, 0.9472),  # on 14 of 14
    Step(Rung(256, 54, fps=15), 19.5, 0.9524),  # on 5 of 14
    Step(Rung(128, 54), 19.5, 0.9347),  # on 2 of 14
    Step(Rung(256, 60), 20.6, 0.9500),  # on 4 of 14
    Step(Rung(0, 57, fps=15), 22.9, 0.9565),  # on 13 of 14
    Step(Rung(176, 54), 23.0, 0.9482),  # on 1 of 14
    Step(Rung(0, 63), 23.2, 0.9484),  # on 4 of 14
    Step(Rung(256, 54), 28.8, 0.9607),  # on 5 of 14
    Step(Rung(0, 60), 28.8, 0.9620),  # on 4 of 14
    Step(Rung(176, 48), 31.1, 0.9584),  # on 0 of 14
    Step(Rung(0, 57), 34.1, 0.9696),  # on 14 of 14
    Step(Rung(256, 48), 39.5, 0.9715),  # on 4 of 14
    Step(Rung(0, 54), 40.7, 0.9766),  # on 11 of 14
    Step(Rung(0, 48), 60.5, 0.9850),  # on 11 of 14
    Step(Rung(0, 42), 98.3, 0.9900),  # on 14 of 14
    Step(Rung(0, 36), 167.0, 0.9933),  # on 14 of 14
)

# a rung must beat the one below by this much face MS-SSIM (the evaluation's noise): a
# change of rung is a new key frame, a burst on a thin link, not worth less
MIN_GAIN = 0.005
UNTRIED = 3.0  # how much dearer than the table a family not yet sent is assumed to be
WINDOW_S = 2.0  # the rate is judged over this long
START_KBPS = 20.0
OVER = 1.10  # above target * OVER: a rung down
UNDER = 0.80  # a rung up when its expected cost stays below target * UNDER


def scale(rung: Rung, width: int, height: int, fps: float) -> float:
    """What a rung costs on this stream over what it costs at the table's reference
    (side² pixels or REFERENCE_AREA, REFERENCE_FPS): the pixels to the ALPHA, the
    frames sent in proportion."""
    low = low_size(width, height, rung.side)
    pixels = REFERENCE_AREA if rung.side == 0 else rung.side**2
    rate = min(fps, rung.fps) if rung.fps else fps
    reference_rate = min(REFERENCE_FPS, rung.fps) if rung.fps else REFERENCE_FPS
    return float((low[0] * low[1] / pixels) ** ALPHA * rate / reference_rate)


def expected_kbps(step: Step, width: int, height: int, fps: float) -> float:
    """The step's table figure for this stream."""
    return step.kbps * scale(step.rung, width, height, fps)


def ladder_for(width: int, height: int, fps: float) -> tuple[Step, ...]:
    """The rungs for a ``width`` x ``height`` stream at ``fps``, cheapest first.

    Two families share it: the fused stream (64² to 256² pixels and a picture) and the
    full-size stream (plain AV1 at our quantizer). Within each, a rung is kept if it is
    better (median face MS-SSIM, by ``MIN_GAIN``) than every cheaper one of its family,
    at the cost expected here. Both families stay: which one a content favours is not
    in the table (a detailed 480x480 clip costs a full-size stream four times its
    figure and a fused one about its figure), the controller learns it. Rungs that send
    the same stream here (a 15 fps cap on a 15 fps camera) count once, as the capped
    one: its figures were measured at the rate it sends.
    """
    seen, unique = set(), []
    for step in sorted(TABLE, key=lambda s: not s.rung.fps):  # the capped ones first
        sent = min(step.rung.fps, fps) if step.rung.fps else fps
        key = (step.rung.side, step.rung.qp, step.rung.picture_quality, sent)
        if key not in seen:
            seen.add(key)
            unique.append(step)
    unique.sort(key=lambda s: (expected_kbps(s, width, height, fps), -s.ms_ssim))
    fused = _envelope([s for s in unique if s.rung.side])
    full = _envelope([s for s in unique if not s.rung.side])
    return tuple(s for s in unique if s in fused or s in full)


def _envelope(steps: list[Step]) -> list[Step]:
    kept: list[Step] = []
    for step in steps:
        if not kept or step.ms_ssim >= kept[-1].ms_ssim + MIN_GAIN:
            kept.append(step)
    return kept


def start_rung(
    ladder: tuple[Step, ...], target_kbps: float, width: int, height: int, fps: float
) -> int:
    """The index of the best rung (median face MS-SSIM) expected to fit ``target_kbps``;
    the cheapest if none does."""
    fits = [
        i for i, step in enumerate(ladder) if expected_kbps(step, width, height, fps) <= target_kbps
    ]
    return max(fits, key=lambda i: ladder[i].ms_ssim) if fits else 0


class RateController:
    """Picks the rung for a target rate from what the stream actually sends.

    Every ``WINDOW_S`` of frames it compares the bytes sent with the target. Each rung's
    table cost is scaled by how far a real cost of its family (fused, full-size) was
    from the table's; a family not yet sent is assumed ``UNTRIED`` times dearer than the
    one being sent, until it is. When over the target: down at once to the best rung
    that fits. When under: up to the least better rung that fits with room to spare
    (``UNDER``), one step at a time (GCC's asymmetry). The window after a change is not
    judged (it holds the new key frame), so the rung never flaps frame to frame. It
    starts at the best rung for ``START_KBPS`` at most and climbs from there.
    """

    def __init__(self, target_kbps: float, width: int, height: int, fps: float) -> None:
        if not target_kbps > 0:
            raise ValueError(f"target must be positive, got {target_kbps}")
        self.width, self.height, self.fps = width, height, fps
        self.target_kbps = float(target_kbps)
        self.ladder = ladder_for(width, height, fps)
        # a cautious start (GCC's too): nobody knows yet what the network carries, and a
        # first second over it is a queue that takes seconds to drain
        self.index = start_rung(self.ladder, min(self.target_kbps, START_KBPS), width, height, fps)
        self._window = max(1, round(WINDOW_S * fps))
        self._sent: deque[tuple[int, int]] = deque()  # (frame index, bytes), one window
        self._judge_at: int | None = None  # the first frame index a judgement may come
        self._ratio: dict[bool, float] = {}  # real over table cost, per family (full size?)
        self.changes = 0

    @property
    def rung(self) -> Rung:
        return self.ladder[self.index].rung

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
        self._ratio[self._full(self.index)] = actual / expected if expected > 0 else 1.0
        quality = [step.ms_ssim for step in self.ladder]
        new = self.index
        if actual > self.target_kbps * OVER:
            # down at once to the rung this content would fit at: an overshoot fills a
            # queue every frame it lasts
            fits = [i for i in range(len(self.ladder)) if self._scaled(i) <= self.target_kbps]
            new = max(fits, key=lambda i: quality[i]) if fits else 0
        else:
            better = [
                i
                for i in range(len(self.ladder))
                if quality[i] > quality[self.index] and self._scaled(i) < self.target_kbps * UNDER
            ]
            new = min(better, key=lambda i: quality[i]) if better else self.index
        if new != self.index:
            self.index = new
            self.changes += 1
            # the window after a change holds the new key frame: judged only after it
            self._sent.clear()
            self._judge_at = index + 2 * self._window
        return self.rung

    def _scaled(self, index: int) -> float:
        """A rung's table cost as this content would make it."""
        current = self._ratio[self._full(self.index)]
        known = self._ratio.get(self._full(index))
        return self._cost(index) * (current * UNTRIED if known is None else known)

    def _full(self, index: int) -> bool:
        return self.ladder[index].rung.side == 0

    def _cost(self, index: int) -> float:
        return expected_kbps(self.ladder[index], self.width, self.height, self.fps)
