"""``appliance codec eval|encode|decode|demo``: the keypoint codec from the command line.

``encode`` writes a clip's datagrams to a file (each prefixed by its length, u16
big-endian: the bytes a network would carry, in order); ``decode`` plays such a file
through the receiver into a video with one picture per source frame, at the source's
rate. Together they show what a call would look like without a network; ``eval``
measures it against x264, VP8 and AV1.

The file keeps no frame boundaries and no rate: the packets' capture timestamps do (ms,
wrapping at 2**16; the sender stamps frame i at round(i * 1000 / fps)). A new timestamp
is a new frame, and the picture written for it is the receiver's after all of that
frame's datagrams (keypoints, then any residuals: not the picture the closed loop had
just rejected). A frame the sender sent nothing for (no face) shows the picture before
it, as a far end would; frames after the last one sent are not in the file.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from appliance.codec.session import Receiver

_LENGTH = struct.Struct(">H")
_WRAP = 1 << 16  # the timestamps' range
# a longer silence is not filled with the last picture: a file of forged timestamps
# (each may jump 32 s ahead) would otherwise decode to hours of video
MAX_GAP_S = 10.0
Stamped = tuple[int | None, list[bytes]]  # capture time (ms, unwrapped), its datagrams


def add_codec_parser(sub: argparse._SubParsersAction) -> None:
    from appliance.codec.evaluate import BASELINES, RATES, SETTINGS

    p = sub.add_parser("codec", help="the keypoint face codec: encode, decode, evaluate")
    actions = p.add_subparsers(dest="codec_command", required=True)
    ev = actions.add_parser("eval", help="rate-distortion of clips through every codec")
    clips_help = "clips, or folders of *.mp4 (default: every clip in ../shared/data/clips)"
    ev.add_argument("clips", nargs="*", type=Path, help=clips_help)
    ev.add_argument("--clips", dest="clip_paths", nargs="+", type=Path, default=[],
                    metavar="PATH", help=f"{clips_help}; a split's folder, e.g. "
                    ".cache/clips/test, is one folder")  # fmt: skip
    ev.add_argument("--settings", default=",".join(f"{f:g}:{q}" for f, q in SETTINGS),
                    help="our codec's points: FLOOR:REFERENCE_QUALITY,...")  # fmt: skip
    ev.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES),
                    help="kbit/s asked of x264, VP8, AV1")  # fmt: skip
    ev.add_argument("--codecs", default=",".join(BASELINES),
                    help="the conventional codecs to run, comma-separated (none: '')")  # fmt: skip
    ev.add_argument(
        "--rungs",
        default="all",
        help="the hybrid's rungs: all (each clip's ladder for its size), candidates, none, "
        "indices 0,1,.. of the table, or rungs side:qp[:fps[:picture quality]] (0: full size)",
    )
    ev.add_argument("--frames", type=int, help="only the first N frames of each clip")
    ev.add_argument("--akd-every", type=int, default=1,
                    help="track every Nth frame (sampling upsets the tracker's smoothing: "
                    "see the clip's self-AKD); 0: no AKD")  # fmt: skip
    ev.add_argument("--plots", type=Path, help="write rate-distortion PNGs into this folder")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    enc = actions.add_parser("encode", help="a clip to a file of codec datagrams")
    enc.add_argument("clip", type=Path)
    enc.add_argument("-o", "--out", type=Path, required=True)
    from appliance.config.schema import CodecConfig

    floor = CodecConfig.model_fields["floor"].default  # one default: the config's
    enc.add_argument("--floor", type=float, default=floor,
                     help=f"face MS-SSIM floor (default {floor:g}, as codec.floor)")  # fmt: skip
    enc.add_argument("--quality", type=int, default=50,
                     help="reference quality, 1..100 (WebP's scale)")  # fmt: skip
    enc.add_argument("--reference-codec", choices=("av1", "webp"), default="av1")
    enc.add_argument("--kbps", type=float,
                     help="the hybrid at this rate (default: keypoints at --floor)")  # fmt: skip
    enc.add_argument("--frames", type=int)
    demo = actions.add_parser("demo", help="camera / the hybrid / x264 / AV1 at one rate")
    demo.add_argument("clips", nargs="*", type=Path, help=clips_help)
    demo.add_argument("--out", type=Path, default=Path("docs/images"))
    demo.add_argument("--kbps", type=float, default=8.0, help="the hybrid's rate")
    dec = actions.add_parser("decode", help="a file of codec datagrams to a video")
    dec.add_argument("packets", type=Path)
    dec.add_argument("-o", "--out", type=Path, required=True, help="video file (.mp4)")
    dec.add_argument("--fps", type=float, help="the video's rate (default: the timestamps')")


def main(args: argparse.Namespace) -> int:
    if args.codec_command == "eval":
        from appliance.codec.evaluate import run

        return run(args)
    if args.codec_command == "demo":
        from appliance.codec.demo import run as run_demo

        return run_demo(args)
    if args.codec_command == "encode":
        return encode(args)
    return decode(args.packets, args.out, args.fps)


def encode(args: argparse.Namespace) -> int:
    from appliance.codec.bitstream import Codec
    from appliance.codec.evaluate import load_clip
    from appliance.codec.session import CodecSettings, Sender

    clip_path, out, frames = args.clip, args.out, args.frames
    if not clip_path.is_file():
        print(f"no such clip: {clip_path}", file=sys.stderr)
        return 2
    try:
        settings = CodecSettings(
            floor=args.floor,
            reference_quality=args.quality,
            reference_codec=Codec[args.reference_codec.upper()],
            target_kbps=args.kbps,
        )
    except ValueError as exc:
        print(f"bad setting: {exc}", file=sys.stderr)
        return 2
    print(f"tracking {clip_path.name} (cached after the first time) ...", flush=True)
    clip = load_clip(clip_path, frames)
    height, width = clip.frames[0].shape[:2]
    sender = Sender(width, height, clip.fps, settings)
    with out.open("wb") as f:
        for index, frame in enumerate(clip.frames):
            points = clip.landmarks[index]
            face = points if np.isfinite(points).all() else None
            for datagram in sender.send(frame, face, index, clip.iris[index]):
                f.write(_LENGTH.pack(len(datagram)) + datagram)
    with out.open("ab") as f:
        for datagram in sender.close():  # what the pacer still held
            f.write(_LENGTH.pack(len(datagram)) + datagram)
    s = sender.stats
    n = len(clip.frames)
    if sender.stream_sender is not None:
        rungs = sender.controller.changes if sender.controller else 0
        print(f"{out}: {n} frames, {s.total_bytes} bytes ({s.total_bytes / n:.0f} B/frame, "
              f"{s.total_bytes * 8 * clip.fps / n / 1000:.1f} kbit/s): hybrid, last rung "
              f"{sender.stream_sender.rung.name}, {rungs} rung changes, "
              f"{sender.stream_sender.counts}")  # fmt: skip
        return 0
    print(
        f"{out}: {n} frames, {s.total_bytes} bytes ({s.total_bytes / n:.0f} B/frame, "
        f"{s.total_bytes * 8 * clip.fps / n / 1000:.1f} kbit/s): keypoints "
        f"{s.keypoint_bytes / max(1, s.keypoint_packets):.1f} B/frame, {s.references} "
        f"references, {sum(s.residuals.values())} residuals; face MS-SSIM min "
        f"{min(s.quality, default=float('nan')):.4f} (floor {settings.floor})"
    )
    return 0


def decode(packets: Path, out: Path, fps: float | None = None) -> int:
    import cv2

    from appliance.codec.session import Receiver

    if not packets.is_file():
        print(f"no such file: {packets}", file=sys.stderr)
        return 2
    if fps is not None and not fps > 0:
        print(f"--fps must be positive, got {fps}", file=sys.stderr)
        return 2
    frames = frame_groups(read_datagrams(packets.read_bytes()))
    rate = fps or frame_rate([t for t, _ in frames if t is not None]) or 30.0
    receiver = Receiver()
    writer = None
    written = blank = 0
    for picture in pictures(receiver, frames, rate):
        if picture is None and writer is None:  # nothing shown yet: black, once sized
            blank += 1
            continue
        if writer is None:
            assert picture is not None
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(out), fourcc, rate, (picture.shape[1], picture.shape[0]))
            black = np.zeros_like(picture)
            for _ in range(blank):
                writer.write(black)
        writer.write(black if picture is None else picture)
        written += 1
    if writer is not None:
        writer.release()
        written += blank
    t = receiver.tracker.stats
    print(f"{out}: {written} frames at {rate:g} fps; {receiver.stats.references} references, "
          f"{receiver.stats.residuals} residuals, {t.garbage} bad datagrams, "
          f"{receiver.stats.errors} undecodable")  # fmt: skip
    return 0 if written else 1


def read_datagrams(data: bytes) -> list[bytes]:
    """The datagrams of an ``encode`` file, in order (a truncated last one is dropped)."""
    datagrams, pos = [], 0
    while pos + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        if pos + size > len(data):
            break
        datagrams.append(data[pos : pos + size])
        pos += size
    return datagrams


def _timestamp(datagram: bytes) -> int | None:
    from appliance.codec.bitstream import BitstreamError, parse

    try:
        return parse(datagram).timestamp
    except BitstreamError:
        return None


def frame_groups(datagrams: Sequence[bytes]) -> list[Stamped]:
    """The datagrams grouped by capture time, a new timestamp a new frame, unwrapped from
    2**16 ms. What has no readable header, or an earlier time (a late packet), goes with
    the frame it arrived in: the receiver sorts it out (garbage, reordering)."""
    frames: list[Stamped] = []
    sent = now = 0  # the current frame's timestamp as sent, and unwrapped
    for datagram in datagrams:
        ts = _timestamp(datagram)
        if ts is not None and (not frames or frames[-1][0] is None):
            # the first readable packet: what came before it goes with its frame
            sent = now = ts
            frames[-1:] = [(ts, frames[-1][1] if frames else [])]
        elif ts is not None and 0 < (ts - sent) % _WRAP < _WRAP // 2:
            now += (ts - sent) % _WRAP
            sent = ts
            frames.append((now, []))
        elif not frames:
            frames.append((None, []))
        frames[-1][1].append(datagram)
    return frames


def frame_rate(times: Sequence[int]) -> float | None:
    """The frame rate of capture times (ms, increasing), None from fewer than two.

    The median interval gives it roughly, and so how many frames each interval spans (a
    longer one holds frames sent nothing: no face); the whole span over its frames gives
    it to a fraction of a ms. The sender stamps frame i at round(i * 1000 / fps): a whole
    rate, or an NTSC one (N / 1.001), that stamps exactly these times is the one.
    """
    intervals = np.diff(np.asarray(times, dtype=np.int64))
    if intervals.size == 0 or not np.all(intervals > 0):
        return None
    step = float(np.median(intervals))
    frames = sum(max(1, round(float(d) / step)) for d in intervals)
    estimate = 1000.0 * frames / float(times[-1] - times[0])
    for candidate in (float(round(estimate)), round(estimate * 1.001) / 1.001):
        if candidate > 0 and all(
            round(_index(t, candidate) * 1000 / candidate) == t for t in times
        ):
            return candidate
    return estimate


def _index(ms: int, fps: float) -> int:
    """The frame stamped ``ms`` (the sender's clock starts at frame 0)."""
    return round(ms * fps / 1000)


def pictures(
    receiver: Receiver, frames: Sequence[Stamped], fps: float
) -> Iterator[np.ndarray | None]:
    """The receiver's picture for every frame from frame 0 to the last one sent, each
    after all of its frame's datagrams; None before it has one. A frame the sender sent
    nothing for keeps the picture before it (yielded before the next frame is fed), for
    at most ``MAX_GAP_S``."""
    shown: np.ndarray | None = None
    following = 0  # the next frame index to yield
    longest = round(MAX_GAP_S * fps)
    for ms, datagrams in frames:
        index = following if ms is None else _index(ms, fps)
        if index - following > longest:  # a jump (a broken or forged time), not a pause
            following = index
        while following < index:
            yield shown
            following += 1
        for datagram in datagrams:
            receiver.feed(datagram)
        if ms is not None and index == following:
            shown = receiver.picture
            yield shown
            following += 1
