"""``appliance codec eval``: the keypoint codec against x264, VP8 and AV1 on real clips.

Every clip goes through this codec at several quality floors (the sender's closed loop
setting; each gives one rate-distortion point) and through the conventional codecs at
several bitrates (real-time settings, ``appliance.codec.baseline``), all at the clip's
frame rate. Our bytes are the datagrams on the wire, headers included; theirs are the
coded packets (no RTP header, which favours them by 12+ bytes per frame).

The conventional codecs are asked for 3 to 200 kbit/s: below the lowest rate each can
reach (its floor, which the summary reports: asking for less gives the floor's bits) and
up to where every one of them shows a clean face.

Per point: bytes per frame, kbit/s, face MS-SSIM (mean and worst frame) and face PSNR
in the source's face box at the face's native size (``metrics.face_ms_ssim``: nothing
shrinks a soft face into looking sharp), and AKD: the tracker run on the decoded frames,
mean distance of its 468 landmarks to the ones found on the source (px; every
``akd_every``-th frame). Our decoded frames are what ``Receiver`` makes of the datagrams,
not the sender's copy.

AKD is only as good as the tracker's repeatability, so it is checked per clip first: the
tracker runs on the ORIGINAL frames of the same sample and is compared with the clip's
cached landmarks (the same tracker's, over the whole clip). Where that self-AKD exceeds
``SELF_AKD_LIMIT_PX`` (or a face is missed) the clip's AKD is not computed, and the
summary says why. The tracker smooths over time, so sampling frames changes what it
sees: every 5th frame put its self-AKD at 0.6-2.6 px on the development clips, every
frame at 0.00 (hence ``akd_every`` = 1 by default).

Per clip: BD-rate of each codec against x264 and against AV1 on face MS-SSIM, each
baseline codec's floor, and our lowest-rate point against x264 and against AV1 at the
same rate (the acceptance test, ``beats_x264_at_low_end`` / ``beats_av1_at_low_end``)
with the bitrate each needs for its face MS-SSIM (the "1:10" ratio). Plots: one
rate-distortion PNG per clip and metric.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.codec import metrics
from appliance.codec.baseline import CODECS as BASELINES
from appliance.codec.hybrid import PICTURE_QUALITY, Rung
from appliance.codec.ladder import CANDIDATES, TABLE, ladder_for
from appliance.codec.tracking import track_frames

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
# our codec's points: (quality floor, reference quality); a lower floor is only worth
# having with a cheaper reference, so the two go together
SETTINGS = ((0.70, 15), (0.75, 25), (0.80, 35), (0.85, 50))
# kbit/s asked of the conventional codecs: from below their floors (SVT-AV1 in low delay
# stops at 11-16 on the development clips, asked for less) to where all have a clean face
RATES = (3.0, 6.0, 10.0, 16.0, 25.0, 40.0, 70.0, 120.0, 200.0)
# face MS-SSIM differences below this are noise: one clip's mean moves about this much
# between two runs of SVT-AV1 at one setting with a frame more or less in the clip
NOISE = 0.005
METRIC = "face MS-SSIM at native size"
# The tracker's own disagreement (mean px, original frames against its cached landmarks)
# above which AKD is not reported. At the low end the AKDs to tell apart lie about 2 px
# apart (lp_d20, every frame tracked: ours 1.5-1.6 px, AV1 at its floor 3.7, x264 at 36
# kbit/s 3.6): an error of more than 1 px on the untouched frames would be half that
# gap. In px, not a share of the face: the faces here are 300-450 px (1 px: 0.2-0.3%),
# and 2% of them (6-9 px) would pass a tracker that cannot tell AV1's floor from ours.
# Fed every frame, the tracker reproduces its landmarks exactly (0.00 px).
SELF_AKD_LIMIT_PX = 1.0
POINTS = 468
Progress = Callable[[str], None]


@dataclass
class Clip:
    name: str
    fps: float
    frames: list[np.ndarray]  # BGR
    landmarks: np.ndarray  # (n, 468, 3) px, NaN where no face was found
    iris: np.ndarray  # (n, 2, 2) iris centres px, NaN where not found

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.frames[0].shape[1], self.frames[0].shape[0]


@dataclass
class Point:
    """One codec at one setting on one clip."""

    codec: str
    setting: str
    kbps: float
    bytes_per_frame: float
    ms_ssim: float
    ms_ssim_min: float
    psnr: float
    akd: float
    akd_missed: int
    extra: dict[str, float] = field(default_factory=dict)


def load_clip(path: Path, frames: int | None = None) -> Clip:
    """The clip's frames and the tracker's landmarks on them (cached in .cache/codec)."""
    import cv2

    from engines.codec.basis import load_track

    track = load_track(path, progress=lambda _m: None)
    cap = cv2.VideoCapture(str(path))
    images: list[np.ndarray] = []
    while frames is None or len(images) < frames:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    n = len(images)
    return Clip(path.stem, track.fps, images, track.landmarks[:n].astype(np.float64),
                track.iris[:n].astype(np.float64))  # fmt: skip


def _found(clip: Clip) -> list[int]:
    """The frames whose source has a face."""
    return [i for i in range(len(clip.frames)) if np.isfinite(clip.landmarks[i]).all()]


def akd_sample(clip: Clip, akd_every: int) -> list[int]:
    """The frames AKD is measured on: every ``akd_every``-th one with a face (0: none)."""
    return _found(clip)[::akd_every] if akd_every > 0 else []


@dataclass
class TrackerCheck:
    """The tracker on the clip's ORIGINAL frames (the AKD sample) against the clip's
    cached landmarks, which the same tracker made: how well it repeats itself here."""

    frames: int
    self_akd_px: float  # NaN: no frame to compare
    missed: int  # sampled frames where it found no face on the original
    limit_px: float = SELF_AKD_LIMIT_PX

    @property
    def reason(self) -> str | None:
        """Why AKD cannot be trusted on this clip, or None."""
        if self.frames == 0:
            return "no AKD sample (--akd-every 0 or no face)"
        if self.missed:
            return f"the tracker missed the face in {self.missed} original frames"
        if not self.self_akd_px <= self.limit_px:
            return (
                f"the tracker's self-AKD on the original frames is {self.self_akd_px:.2f} px "
                f"(limit {self.limit_px:g} px)"
            )
        return None

    def as_dict(self) -> dict[str, object]:
        reason = self.reason
        return {**asdict(self), "akd_computed": reason is None, "reason": reason}


def check_tracker(clip: Clip, sample: Sequence[int]) -> TrackerCheck:
    if not sample:
        return TrackerCheck(0, math.nan, 0)
    tracked, _ = track_frames((clip.frames[i] for i in sample), clip.fps)
    self_akd, missed = metrics.akd_series([clip.landmarks[i] for i in sample], list(tracked))
    return TrackerCheck(len(sample), self_akd, missed)


def measure(
    clip: Clip, decoded: Sequence[np.ndarray], codec: str, setting: str, total_bytes: int,
    akd_frames: Sequence[int], extra: dict[str, float] | None = None,
) -> Point:  # fmt: skip
    """The figures of one decoded version of the clip; AKD on ``akd_frames`` (none: NaN)."""
    found = _found(clip)
    ssim = [metrics.face_ms_ssim(clip.frames[i], decoded[i], clip.landmarks[i]) for i in found]
    psnr = [metrics.face_psnr(clip.frames[i], decoded[i], clip.landmarks[i]) for i in found]
    akd, missed = math.nan, 0
    if akd_frames:
        tracked, _ = track_frames((decoded[i] for i in akd_frames), clip.fps)
        akd, missed = metrics.akd_series([clip.landmarks[i] for i in akd_frames], list(tracked))
    n = len(clip.frames)
    return Point(
        codec,
        setting,
        total_bytes * 8 * clip.fps / n / 1000,
        total_bytes / n,
        float(np.mean(ssim)) if ssim else math.nan,
        float(np.min(ssim)) if ssim else math.nan,
        float(np.mean(np.minimum(psnr, 99.0))) if psnr else math.nan,
        akd,
        missed,
        extra or {},
    )


@dataclass
class Call:
    """A clip through ``Sender`` -> datagrams -> ``Receiver``, lossless."""

    sender: Any
    pictures: list[np.ndarray]  # what the receiver showed, frame by frame
    receive_s: float

    @property
    def kbps(self) -> float:
        n = len(self.pictures)
        return self.sender.stats.total_bytes * 8 * self.sender.fps / n / 1000


def run_call(clip: Clip, floor: float, quality: int, rung: Rung | None = None) -> Call:
    """The clip through a lossless call: keypoints at ``floor`` and ``quality``, or the
    hybrid's stream mode at ``rung``."""
    from appliance.codec.session import CodecSettings, Receiver, Sender

    height, width = clip.frames[0].shape[:2]
    settings = CodecSettings(floor=floor, reference_quality=quality, rung=rung)
    sender = Sender(width, height, clip.fps, settings, stream=1)
    receiver = Receiver()
    pictures: list[np.ndarray] = []
    receive_s = 0.0
    for index, frame in enumerate(clip.frames):
        points = clip.landmarks[index]
        face = points if np.isfinite(points).all() else None
        datagrams = sender.send(frame, face, index, clip.iris[index])
        start = time.perf_counter()
        for datagram in datagrams:
            receiver.feed(datagram)
        receive_s += time.perf_counter() - start
        picture = receiver.picture
        pictures.append(picture if picture is not None else np.zeros_like(frame))
    sender.close()
    return Call(sender, pictures, receive_s)


def run_keypoint_codec(clip: Clip, floor: float, quality: int, akd_frames: Sequence[int]) -> Point:
    """The receiver's pictures of the clip, measured."""
    call = run_call(clip, floor, quality)
    sender, decoded, receive_s = call.sender, call.pictures, call.receive_s
    s = sender.stats
    n = len(clip.frames)
    extra = {
        "keypoint_bytes_per_frame": s.keypoint_bytes / max(1, s.keypoint_packets),
        "reference_bytes_per_frame": s.reference_bytes / n,
        "residual_bytes_per_frame": s.residual_bytes / n,
        "references": float(s.references),
        "residuals": float(sum(s.residuals.values())),
        "below_floor": float(s.below_floor),
        "sender_ms_p50": float(np.median(s.loop_ms)) if s.loop_ms else math.nan,
        "receiver_ms_mean": receive_s / n * 1e3,
    }
    setting = f"floor {floor:.2f} q{quality}"
    return measure(clip, decoded, "keypoints", setting, s.total_bytes, akd_frames, extra)


def run_hybrid(clip: Clip, rung: Rung, akd_frames: Sequence[int]) -> Point:
    """The hybrid's stream mode at one rung of its ladder, measured."""
    call = run_call(clip, 0.0, 60, rung)
    stream = call.sender.stream_sender
    n = len(clip.frames)
    extra = {
        **{f"{k}_bytes_per_frame": v / n for k, v in stream.bytes.items()},
        **{k: float(v) for k, v in stream.counts.items()},
        "sender_ms_p50": float(np.median(call.sender.stats.loop_ms)),
        "receiver_ms_mean": call.receive_s / n * 1e3,
    }
    total = call.sender.stats.total_bytes
    return measure(clip, call.pictures, "hybrid", rung.name, total, akd_frames, extra)


def run_baseline(clip: Clip, codec: str, kbps: float, akd_frames: Sequence[int]) -> Point:
    from appliance.codec.baseline import encode_decode

    result = encode_decode(clip.frames, clip.fps, codec, kbps)
    return measure(
        clip, result.decoded, codec, f"{kbps:g} kbit/s", sum(result.frame_bytes), akd_frames
    )


def curve(points: Sequence[Point], codec: str, key: str = "ms_ssim") -> tuple[list, list]:
    chosen = sorted((p for p in points if p.codec == codec), key=lambda p: p.kbps)
    return [p.kbps for p in chosen], [getattr(p, key) for p in chosen]


def plotted(points: Sequence[Point], codec: str, key: str) -> tuple[list, list]:
    """A codec's curve as drawn: the hybrid's rungs of two families are not one curve in
    rate order (it would zig-zag), so it is drawn as their envelope, the rungs a
    controller that knew the content would pick, and as the comparisons read it."""
    rates, values = curve(points, codec, key)
    if codec != "hybrid":
        return rates, values
    better = (lambda a, b: a > b) if key == "ms_ssim" else (lambda a, b: a < b)
    kept: tuple[list, list] = ([], [])
    for rate, value in zip(rates, values, strict=True):
        if value is None or not math.isfinite(value):
            continue
        if not kept[1] or better(value, kept[1][-1]):
            kept[0].append(rate)
            kept[1].append(value)
    return kept


def summarize(points: Sequence[Point], akd_computed: bool = True) -> dict[str, object]:
    """BD-rates against x264 and AV1, each baseline codec's floor, and our lowest-rate
    point against x264 and AV1 at the same rate (``_low_end``). Without AKD on the clip
    (``akd_computed`` False: the tracker is not repeatable there) the low end is judged
    on face MS-SSIM alone, and the summary says so."""
    out: dict[str, object] = {"metric": METRIC, "akd_computed": akd_computed}
    codecs = sorted({p.codec for p in points})
    for ref in ("x264", "av1"):
        reference = curve(points, ref)
        for codec in (c for c in codecs if c != ref):
            test = curve(points, codec)
            if len(reference[0]) >= 2 and len(test[0]) >= 2:
                out[f"bd_rate_{codec}_vs_{ref}_pct"] = metrics.bd_rate(*reference, *test)
    for codec in (c for c in BASELINES if c in codecs):
        # the lowest rate it actually went to, whatever it was asked
        out[f"{codec}_floor_kbps"] = min(p.kbps for p in points if p.codec == codec)
    if "hybrid" in codecs and "av1" in codecs:
        out["hybrid_below_av1"] = below(points, "hybrid", "av1")
    name = "hybrid" if "hybrid" in codecs else "keypoints"
    ours = sorted((p for p in points if p.codec == name), key=lambda p: p.kbps)
    if not ours:
        return out
    low = ours[0]
    out["lowest_point"] = {"kbps": low.kbps, "ms_ssim": low.ms_ssim, "akd": low.akd}
    for ref in ("x264", "av1"):
        if len(curve(points, ref)[0]) >= 2:
            out.update(_low_end(points, low, ref, akd_computed))
    return out


def below(points: Sequence[Point], ours: str, ref: str) -> list[dict[str, float]]:
    """``ref``'s points where ``ours`` is worse at the same rate by more than
    ``NOISE`` (our envelope read at their rate, log-rate interpolation); at rates below
    our lowest point ours counts as worse, above our highest as not measured."""
    rates, values = curve(points, ours)
    envelope = list(np.maximum.accumulate(values)) if values else []
    out = []
    for p in (x for x in points if x.codec == ref):
        if not rates or p.kbps > rates[-1]:
            continue
        ours_there = -math.inf if p.kbps < rates[0] else _at_rate(rates, envelope, p.kbps)
        if ours_there < p.ms_ssim - NOISE:
            out.append({"kbps": p.kbps, ref: p.ms_ssim, ours: ours_there})
    return out


def _low_end(
    points: Sequence[Point], low: Point, ref: str, akd_computed: bool
) -> dict[str, object]:
    """Our lowest point against ``ref`` at the same rate (its curve read at our bitrate,
    log-rate interpolation) and the ``ref`` bitrate it would need for our face MS-SSIM
    (the "1:10" ratio; ``bitrate_ratio`` for x264, ``bitrate_ratio_vs_REF`` otherwise)."""
    ref_curve = curve(points, ref)
    ref_rate = metrics.rate_at_quality(*ref_curve, low.ms_ssim)
    ref_ssim = _at_rate(*ref_curve, low.kbps)
    ref_akd = _at_rate(*curve(points, ref, "akd"), low.kbps)

    def no_worse_face(akd: float) -> bool:
        # an AKD of NaN on a clip with AKD: the tracker found no face in their picture
        return not akd_computed or math.isnan(akd) or low.akd <= akd

    out: dict[str, object] = {
        f"{ref}_at_same_kbps": {"ms_ssim": ref_ssim, "akd": ref_akd},
        f"{ref}_kbps_at_equal_ms_ssim": ref_rate,
        "bitrate_ratio" if ref == "x264" else f"bitrate_ratio_vs_{ref}": (
            ref_rate / low.kbps if ref_rate else None
        ),
        f"better_than_{ref}_at_same_rate": bool(low.ms_ssim >= ref_ssim and no_worse_face(ref_akd)),
        # its own points that spend more bits for a worse face
        f"{ref}_points_beaten": [
            x.setting for x in points
            if x.codec == ref and x.kbps >= low.kbps and x.ms_ssim <= low.ms_ssim
            and no_worse_face(x.akd)
        ],
    }  # fmt: skip
    # the acceptance test: as good a face for fewer bits, read on the curve at our rate
    # or, below the lowest rate the codec reaches, against that lowest point
    out[f"beats_{ref}_at_low_end"] = bool(
        out[f"better_than_{ref}_at_same_rate"] or out[f"{ref}_points_beaten"]
    )
    return out


def _at_rate(rates: list[float], values: list[float], kbps: float) -> float:
    """A curve's value at ``kbps``, interpolated on log rate; NaN outside its range (a
    codec that could not go that low has no figure there)."""
    pairs = sorted((r, v) for r, v in zip(rates, values, strict=True) if math.isfinite(v))
    if len(pairs) < 2 or not pairs[0][0] <= kbps <= pairs[-1][0]:
        return math.nan
    xs, ys = zip(*pairs, strict=True)
    return float(np.interp(math.log(kbps), np.log(xs), ys))


def markdown(results: dict[str, dict]) -> str:
    """The points of every clip, then one line per clip of what they add up to."""
    lines = [
        f"Quality: {METRIC} (the source's face box in both frames, luma, not resampled; "
        f"enlarged to {metrics.MS_SSIM_MIN_SIDE} px only when smaller). AKD: the tracker on "
        f"the decoded frames against the source's landmarks, where its own self-AKD on the "
        f"original frames is at most {SELF_AKD_LIMIT_PX:g} px.",
        "",
        "| clip | codec | setting | kbit/s | B/frame | face MS-SSIM | worst | face PSNR "
        "| AKD px | keypoint B/frame | refs | residuals |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        computed = result["summary"].get("akd_computed", True)
        for p in result["points"]:
            e = p["extra"]
            kp = f"{e['keypoint_bytes_per_frame']:.1f}" if e else ""
            refs = f"{e['references']:.0f}" if e else ""
            res = f"{e['residuals']:.0f}" if e else ""
            akd = f"{p['akd']:.2f}" if computed else "not computed"
            lines.append(
                f"| {name} | {p['codec']} | {p['setting']} | {p['kbps']:.1f} "
                f"| {p['bytes_per_frame']:.0f} | {p['ms_ssim']:.4f} | {p['ms_ssim_min']:.4f} "
                f"| {p['psnr']:.2f} | {akd} | {kp} | {refs} | {res} |"
            )
    return "\n".join([*lines, "", *_summary_table(results)]) + "\n"


def _summary_table(results: dict[str, dict]) -> list[str]:
    lines = [
        "| clip | tracker self-AKD px | AV1 floor kbit/s | our lowest: kbit/s, MS-SSIM, AKD "
        "| BD-rate vs x264 | BD-rate vs AV1 | beats x264 at low end | beats AV1 at low end |",
        "|---|---:|---:|---|---:|---:|---|---|",
    ]
    skipped = []
    for name, result in results.items():
        summary, tracker = result["summary"], result["tracker"]
        low = summary.get("lowest_point") or {}
        akd = f"{low['akd']:.2f} px" if summary["akd_computed"] and low else "–"
        ours = f"{low['kbps']:.1f}, {low['ms_ssim']:.3f}, {akd}" if low else "–"
        lines.append(
            f"| {name} | {_figure(tracker['self_akd_px'], '.2f')} "
            f"| {_figure(summary.get('av1_floor_kbps'), '.1f')} | {ours} "
            f"| {_figure(summary.get('bd_rate_keypoints_vs_x264_pct'), '+.0f', '%')} "
            f"| {_figure(summary.get('bd_rate_keypoints_vs_av1_pct'), '+.0f', '%')} "
            f"| {_yes_no(summary.get('beats_x264_at_low_end'))} "
            f"| {_yes_no(summary.get('beats_av1_at_low_end'))} |"
        )
        if not summary["akd_computed"]:
            skipped.append(f"{name} ({tracker['reason']})")
    if skipped:
        lines += [
            "",
            "AKD not computed, low end judged on face MS-SSIM alone: " + "; ".join(skipped),
        ]
    return lines


def _figure(value: object, spec: str, unit: str = "") -> str:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{value:{spec}}{unit}"
    return "–"


def _yes_no(value: object) -> str:
    return "–" if value is None else ("yes" if value else "no")


def evaluate(
    clips: Sequence[Path],
    settings: Sequence[tuple[float, int]] = SETTINGS,
    rates: Sequence[float] = RATES,
    codecs: Sequence[str] = BASELINES,
    rungs: Sequence[Rung] | None = (),
    frames: int | None = None,
    akd_every: int = 1,
    plots: Path | None = None,
    progress: Progress = print,
) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for path in clips:
        clip = load_clip(path, frames)
        progress(f"{clip.name}: {len(clip.frames)} frames at {clip.fps:g} fps")
        sample = akd_sample(clip, akd_every)
        tracker = check_tracker(clip, sample)
        progress(f"  tracker on the original frames: self-AKD {tracker.self_akd_px:.2f} px"
                 f" over {tracker.frames} frames{_because(tracker.reason)}")  # fmt: skip
        if tracker.reason is not None:
            sample = []  # no AKD on this clip
        points: list[Point] = []
        for floor, quality in settings:
            points.append(run_keypoint_codec(clip, floor, quality, sample))
            progress(f"  {_line(points[-1])}")
        height, width = clip.frames[0].shape[:2]
        if rungs is None:  # each clip's own ladder, for its size
            clip_rungs = [step.rung for step in ladder_for(width, height, clip.fps)]
        for rung in clip_rungs if rungs is None else rungs:
            points.append(run_hybrid(clip, rung, sample))
            progress(f"  {_line(points[-1])}")
        for codec in codecs:
            for kbps in rates:
                points.append(run_baseline(clip, codec, kbps, sample))
                progress(f"  {_line(points[-1])}")
        results[clip.name] = {
            "points": [asdict(p) for p in points],
            "tracker": tracker.as_dict(),
            "summary": summarize(points, akd_computed=tracker.reason is None),
        }
        if plots is not None:
            _plot(clip.name, points, plots)
    if plots is not None and len(results) > 1:
        plot_all(results, plots)
    return results


def _because(reason: str | None) -> str:
    return "" if reason is None else f": AKD not computed ({reason})"


def plot_all(results: dict[str, dict], folder: Path) -> None:
    """One picture per metric with a panel per clip (docs/images/codec-rd-*.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, label in (("ms_ssim", METRIC), ("akd", "AKD, px (lower is better)")):
        panels = {}
        for name, result in results.items():
            points = [Point(**p) for p in result["points"]]
            codecs = sorted({p.codec for p in points})
            panels[name] = {c: plotted(points, c, key) for c in codecs}
        metrics.plot_rd_grid(panels, folder / f"rd-all-{key}.png", label)


def _line(p: Point) -> str:
    return (
        f"{p.codec:9s} {p.setting:14s} {p.kbps:7.1f} kbit/s {p.bytes_per_frame:7.0f} B/frame "
        f"MS-SSIM {p.ms_ssim:.4f} (worst {p.ms_ssim_min:.4f}) PSNR {p.psnr:.2f} AKD {p.akd:.2f}"
    )


def _plot(name: str, points: Sequence[Point], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    codecs = sorted({p.codec for p in points})
    for key, label in (("ms_ssim", METRIC), ("akd", "AKD, px (lower is better)")):
        curves = {c: plotted(points, c, key) for c in codecs}
        metrics.plot_rd(curves, folder / f"rd-{name}-{key}.png", f"{name}: {label}",
                        ylabel=label)  # fmt: skip


def find_clips(paths: Sequence[Path]) -> list[Path]:
    """The clips ``paths`` name: a file as it is, a folder as its ``*.mp4`` (sorted, not
    recursive: of a split layout, pass the split's folder, e.g. .cache/clips/test). No
    paths: every clip in ../shared/data/clips. ValueError for a path that is neither, a
    folder without clips, or two clips of one name (results are keyed by name)."""
    clips: list[Path] = []
    for path in paths or [DEFAULT_DATA / "clips"]:
        if path.is_dir():
            found = sorted(path.glob("*.mp4"))
            if not found:
                raise ValueError(f"no *.mp4 clips in {path}")
            clips += found
        elif path.is_file():
            clips.append(path)
        else:
            raise ValueError(f"no such clip or folder: {path}")
    names = [c.stem for c in clips]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two clips named {', '.join(twice)}: results are keyed by name")
    return clips


def run(args: argparse.Namespace) -> int:
    """``appliance codec eval`` (arguments in ``appliance.codec.cli``)."""
    try:
        clips = find_clips([*args.clips, *args.clip_paths])
        settings, rates, codecs = _choices(args)
        rungs = _rungs(args.rungs)
    except ValueError as exc:
        print(f"codec eval: {exc}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    results = evaluate(clips, settings, rates, codecs, rungs, args.frames, args.akd_every,
                       args.plots, progress)  # fmt: skip
    if args.json:
        print(json.dumps(_finite(results), indent=1))
    else:
        print(markdown(results))
        for name, result in results.items():
            print(f"{name}: {json.dumps(_finite(result['summary']))}")
    return 0


def _choices(args: argparse.Namespace) -> tuple[list[tuple[float, int]], list[float], list[str]]:
    """--settings, --rates and --codecs, checked."""
    try:
        settings = [_setting(v) for v in args.settings.split(",") if v]
        rates = [float(v) for v in args.rates.split(",") if v]
    except ValueError as exc:
        raise ValueError(f"--settings takes FLOOR:QUALITY,... and --rates numbers: {exc}") from None
    if not all(r > 0 and math.isfinite(r) for r in rates):
        raise ValueError(f"--rates must be positive kbit/s, got {args.rates}")
    codecs = [c for c in args.codecs.split(",") if c]
    unknown = sorted(set(codecs) - set(BASELINES))
    if unknown:
        raise ValueError(
            f"unknown codec {', '.join(unknown)}: --codecs takes {','.join(BASELINES)}"
        )
    return settings, rates, codecs


def _rungs(text: str) -> list[Rung] | None:
    """--rungs: "all" (None: each clip's own ladder, ``ladder_for`` its size), "candidates"
    (what the table was measured on), "none", or a list of table indices (0 the
    cheapest) and rungs written side:qp[:fps[:picture quality]] (side 0: the full
    size), e.g. 0,2,256:54,0:60:15."""
    if text == "all":
        return None
    if text == "candidates":
        return list(CANDIDATES)
    if text == "none":
        return []
    rungs = []
    for token in filter(None, text.split(",")):
        try:
            if ":" in token:
                side, qp, *rest = token.split(":")
                if len(rest) > 2:
                    raise ValueError(token)
                fps = float(rest[0]) if rest else 0.0
                picture = int(rest[1]) if len(rest) > 1 else PICTURE_QUALITY
                rungs.append(Rung(int(side), int(qp), fps=fps, picture_quality=picture))
            elif int(token) < 0:
                raise ValueError(token)  # TABLE[-1] would be the dearest, not an error
            else:
                rungs.append(TABLE[int(token)].rung)
        except (ValueError, IndexError):
            raise ValueError(
                f"--rungs takes all, candidates, none, indices 0..{len(TABLE) - 1} or "
                f"side:qp[:fps[:picture quality]], not {token!r}"
            ) from None
    return rungs


def _setting(text: str) -> tuple[float, int]:
    floor, _, quality = text.partition(":")
    return float(floor), int(quality or 60)


def _finite(value: object) -> object:
    """JSON has no NaN: missing figures become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
