"""``appliance codec eval``: the keypoint codec against x264, VP8 and AV1 on real clips.

Every clip goes through this codec at several quality floors (the sender's closed loop
setting; each gives one rate-distortion point) and through the conventional codecs at
several bitrates (real-time settings, ``appliance.codec.baseline``), all at the clip's
frame rate. Our bytes are the datagrams on the wire, headers included; theirs are the
coded packets (no RTP header, which favours them by 12+ bytes per frame).

Per point: bytes per frame, kbit/s, face MS-SSIM (mean and worst frame) and face PSNR
at the source's face box, and AKD: the tracker run on the decoded frames, mean distance
of its 468 landmarks to the ones found on the source (px; every ``akd_every``-th frame).
Our decoded frames are what ``Receiver`` makes of the datagrams, not the sender's copy.

Per clip: BD-rate of each codec against x264 on face MS-SSIM, and the x264 bitrate that
reaches the face MS-SSIM of our lowest-rate point (the "1:10" ratio). Plots: one
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
from appliance.codec.tracking import track_frames

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
# our codec's points: (quality floor, reference quality); a lower floor is only worth
# having with a cheaper reference, so the two go together
SETTINGS = ((0.70, 15), (0.75, 25), (0.80, 35), (0.85, 50))
RATES = (10.0, 20.0, 40.0, 80.0)  # kbit/s for the conventional codecs
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


def measure(
    clip: Clip, decoded: Sequence[np.ndarray], codec: str, setting: str, total_bytes: int,
    akd_every: int, extra: dict[str, float] | None = None,
) -> Point:  # fmt: skip
    """The figures of one decoded version of the clip."""
    found = [i for i in range(len(clip.frames)) if np.isfinite(clip.landmarks[i]).all()]
    ssim = [metrics.face_ms_ssim(clip.frames[i], decoded[i], clip.landmarks[i]) for i in found]
    psnr = [metrics.face_psnr(clip.frames[i], decoded[i], clip.landmarks[i]) for i in found]
    sample = found[::akd_every] if akd_every > 0 else []
    akd, missed = math.nan, 0
    if sample:
        tracked, _ = track_frames((decoded[i] for i in sample), clip.fps)
        akd, missed = metrics.akd_series([clip.landmarks[i] for i in sample], list(tracked))
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


def run_call(clip: Clip, floor: float, quality: int) -> Call:
    from appliance.codec.session import CodecSettings, Receiver, Sender

    height, width = clip.frames[0].shape[:2]
    settings = CodecSettings(floor=floor, reference_quality=quality)
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
    return Call(sender, pictures, receive_s)


def run_keypoint_codec(clip: Clip, floor: float, quality: int, akd_every: int) -> Point:
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
    return measure(clip, decoded, "keypoints", setting, s.total_bytes, akd_every, extra)


def run_baseline(clip: Clip, codec: str, kbps: float, akd_every: int) -> Point:
    from appliance.codec.baseline import encode_decode

    result = encode_decode(clip.frames, clip.fps, codec, kbps)
    return measure(
        clip, result.decoded, codec, f"{kbps:g} kbit/s", sum(result.frame_bytes), akd_every
    )


def curve(points: Sequence[Point], codec: str, key: str = "ms_ssim") -> tuple[list, list]:
    chosen = sorted((p for p in points if p.codec == codec), key=lambda p: p.kbps)
    return [p.kbps for p in chosen], [getattr(p, key) for p in chosen]


def summarize(points: Sequence[Point]) -> dict[str, object]:
    """BD-rates against x264; our lowest-rate point against x264 at the same rate (its
    curve read at our bitrate, log-rate interpolation) and the x264 bitrate it would need
    for our face MS-SSIM (the "1:10" ratio)."""
    out: dict[str, object] = {}
    ref = curve(points, "x264")
    for codec in sorted({p.codec for p in points} - {"x264"}):
        test = curve(points, codec)
        if len(ref[0]) >= 2 and len(test[0]) >= 2:
            out[f"bd_rate_{codec}_vs_x264_pct"] = metrics.bd_rate(*ref, *test)
    ours = sorted((p for p in points if p.codec == "keypoints"), key=lambda p: p.kbps)
    if not ours or len(ref[0]) < 2:
        return out
    low = ours[0]
    x264_rate = metrics.rate_at_quality(*ref, low.ms_ssim)
    x264_ssim = _at_rate(*ref, low.kbps)
    x264_akd = _at_rate(*curve(points, "x264", "akd"), low.kbps)
    out["lowest_point"] = {"kbps": low.kbps, "ms_ssim": low.ms_ssim, "akd": low.akd}
    out["x264_at_same_kbps"] = {"ms_ssim": x264_ssim, "akd": x264_akd}
    out["x264_kbps_at_equal_ms_ssim"] = x264_rate
    out["bitrate_ratio"] = (x264_rate / low.kbps) if x264_rate else None
    out["better_than_x264_at_same_rate"] = bool(
        low.ms_ssim >= x264_ssim and (math.isnan(x264_akd) or low.akd <= x264_akd)
    )
    # x264's own points that spend more bits for a worse face (an AKD of NaN: the tracker
    # found no face in x264's picture at all)
    out["x264_points_beaten"] = [
        x.setting for x in points
        if x.codec == "x264" and x.kbps >= low.kbps and x.ms_ssim <= low.ms_ssim
        and (math.isnan(x.akd) or x.akd >= low.akd)
    ]  # fmt: skip
    # the acceptance test: as good a face for fewer bits, read on x264's curve at our rate
    # or, below the lowest rate x264 reaches, against that lowest point
    out["beats_x264_at_low_end"] = bool(
        out["better_than_x264_at_same_rate"] or out["x264_points_beaten"]
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
    lines = [
        "| clip | codec | setting | kbit/s | B/frame | face MS-SSIM | worst | face PSNR "
        "| AKD px | keypoint B/frame | refs | residuals |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for p in result["points"]:
            e = p["extra"]
            kp = f"{e['keypoint_bytes_per_frame']:.1f}" if e else ""
            refs = f"{e['references']:.0f}" if e else ""
            res = f"{e['residuals']:.0f}" if e else ""
            lines.append(
                f"| {name} | {p['codec']} | {p['setting']} | {p['kbps']:.1f} "
                f"| {p['bytes_per_frame']:.0f} | {p['ms_ssim']:.4f} | {p['ms_ssim_min']:.4f} "
                f"| {p['psnr']:.2f} | {p['akd']:.2f} | {kp} | {refs} | {res} |"
            )
    return "\n".join(lines) + "\n"


def evaluate(
    clips: Sequence[Path],
    settings: Sequence[tuple[float, int]] = SETTINGS,
    rates: Sequence[float] = RATES,
    codecs: Sequence[str] = ("x264", "vp8", "av1"),
    frames: int | None = None,
    akd_every: int = 5,
    plots: Path | None = None,
    progress: Progress = print,
) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for path in clips:
        clip = load_clip(path, frames)
        progress(f"{clip.name}: {len(clip.frames)} frames at {clip.fps:g} fps")
        points: list[Point] = []
        for floor, quality in settings:
            points.append(run_keypoint_codec(clip, floor, quality, akd_every))
            progress(f"  {_line(points[-1])}")
        for codec in codecs:
            for kbps in rates:
                points.append(run_baseline(clip, codec, kbps, akd_every))
                progress(f"  {_line(points[-1])}")
        results[clip.name] = {"points": [asdict(p) for p in points], "summary": summarize(points)}
        if plots is not None:
            _plot(clip.name, points, plots)
    if plots is not None and len(results) > 1:
        _plot_all(results, plots)
    return results


def _plot_all(results: dict[str, dict], folder: Path) -> None:
    """One picture per metric with a panel per clip (docs/images/codec-rd-*.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, label in (("ms_ssim", "face MS-SSIM"), ("akd", "AKD, px (lower is better)")):
        panels = {}
        for name, result in results.items():
            points = [Point(**p) for p in result["points"]]
            panels[name] = {c: curve(points, c, key) for c in sorted({p.codec for p in points})}
        metrics.plot_rd_grid(panels, folder / f"rd-all-{key}.png", label)


def _line(p: Point) -> str:
    return (
        f"{p.codec:9s} {p.setting:14s} {p.kbps:7.1f} kbit/s {p.bytes_per_frame:7.0f} B/frame "
        f"MS-SSIM {p.ms_ssim:.4f} (worst {p.ms_ssim_min:.4f}) PSNR {p.psnr:.2f} AKD {p.akd:.2f}"
    )


def _plot(name: str, points: Sequence[Point], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    codecs = sorted({p.codec for p in points})
    for key, label in (("ms_ssim", "face MS-SSIM"), ("akd", "AKD, px (lower is better)")):
        curves = {c: curve(points, c, key) for c in codecs}
        metrics.plot_rd(curves, folder / f"rd-{name}-{key}.png", f"{name}: {label}",
                        ylabel=label)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``appliance codec eval`` (arguments in ``appliance.codec.cli``)."""
    clips = list(args.clips) or sorted((DEFAULT_DATA / "clips").glob("*.mp4"))
    if not clips:
        print(f"no clips given and none in {DEFAULT_DATA / 'clips'}", file=sys.stderr)
        return 2
    try:
        settings = [_setting(v) for v in args.settings.split(",") if v]
        rates = [float(v) for v in args.rates.split(",") if v]
    except ValueError as exc:
        print(f"--settings takes FLOOR:QUALITY,... and --rates numbers: {exc}", file=sys.stderr)
        return 2
    missing = [c for c in clips if not c.is_file()]
    if missing:
        print(f"no such clip: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    codecs = [c for c in args.codecs.split(",") if c]

    def progress(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    results = evaluate(clips, settings, rates, codecs, args.frames, args.akd_every, args.plots,
                       progress)  # fmt: skip
    if args.json:
        print(json.dumps(_finite(results), indent=1))
    else:
        print(markdown(results))
        for name, result in results.items():
            print(f"{name}: {json.dumps(_finite(result['summary']))}")
    return 0


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
