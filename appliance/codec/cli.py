"""``appliance codec eval|encode|decode|demo``: the keypoint codec from the command line.

``encode`` writes a clip's datagrams to a file (each prefixed by its length, u16
big-endian: the bytes a network would carry, in order); ``decode`` plays such a file
through the receiver into a video. Together they show what a call would look like
without a network; ``eval`` measures it against x264, VP8 and AV1.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

_LENGTH = struct.Struct(">H")


def add_codec_parser(sub: argparse._SubParsersAction) -> None:
    from appliance.codec.evaluate import RATES, SETTINGS

    p = sub.add_parser("codec", help="the keypoint face codec: encode, decode, evaluate")
    actions = p.add_subparsers(dest="codec_command", required=True)
    ev = actions.add_parser("eval", help="rate-distortion of clips through every codec")
    ev.add_argument("clips", nargs="*", type=Path,
                    help="clips (default: every clip in ../shared/data/clips)")  # fmt: skip
    ev.add_argument("--settings", default=",".join(f"{f:g}:{q}" for f, q in SETTINGS),
                    help="our codec's points: FLOOR:REFERENCE_QUALITY,...")  # fmt: skip
    ev.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES),
                    help="kbit/s for x264, VP8, AV1")  # fmt: skip
    ev.add_argument("--codecs", default="x264,vp8,av1")
    ev.add_argument("--frames", type=int, help="only the first N frames of each clip")
    ev.add_argument("--akd-every", type=int, default=5, help="track every Nth frame; 0: no AKD")
    ev.add_argument("--plots", type=Path, help="write rate-distortion PNGs into this folder")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    enc = actions.add_parser("encode", help="a clip to a file of codec datagrams")
    enc.add_argument("clip", type=Path)
    enc.add_argument("-o", "--out", type=Path, required=True)
    enc.add_argument("--floor", type=float, default=0.85, help="face MS-SSIM floor")
    enc.add_argument("--quality", type=int, default=50,
                     help="reference quality, 1..100 (WebP's scale)")  # fmt: skip
    enc.add_argument("--reference-codec", choices=("av1", "webp"), default="av1")
    enc.add_argument("--frames", type=int)
    demo = actions.add_parser("demo", help="camera / this codec / x264 at the same rate")
    demo.add_argument("--out", type=Path, default=Path("docs/images"))
    dec = actions.add_parser("decode", help="a file of codec datagrams to a video")
    dec.add_argument("packets", type=Path)
    dec.add_argument("-o", "--out", type=Path, required=True, help="video file (.mp4)")
    dec.add_argument("--fps", type=float, default=30.0)


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
    s = sender.stats
    n = len(clip.frames)
    print(
        f"{out}: {n} frames, {s.total_bytes} bytes ({s.total_bytes / n:.0f} B/frame, "
        f"{s.total_bytes * 8 * clip.fps / n / 1000:.1f} kbit/s): keypoints "
        f"{s.keypoint_bytes / max(1, s.keypoint_packets):.1f} B/frame, {s.references} "
        f"references, {sum(s.residuals.values())} residuals; face MS-SSIM min "
        f"{min(s.quality, default=float('nan')):.4f} (floor {settings.floor})"
    )
    return 0


def decode(packets: Path, out: Path, fps: float) -> int:
    import cv2

    from appliance.codec.session import Receiver

    if not packets.is_file():
        print(f"no such file: {packets}", file=sys.stderr)
        return 2
    data = packets.read_bytes()
    receiver = Receiver()
    writer = None
    frames = pos = 0
    while pos + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, pos)
        datagram = data[pos + _LENGTH.size : pos + _LENGTH.size + size]
        pos += _LENGTH.size + size
        if receiver.feed(datagram) and receiver.picture is not None:
            picture = receiver.picture
            if writer is None:
                fourcc = cv2.VideoWriter.fourcc(*"mp4v")
                size_wh = (picture.shape[1], picture.shape[0])
                writer = cv2.VideoWriter(str(out), fourcc, fps, size_wh)
            writer.write(picture)
            frames += 1
    if writer is not None:
        writer.release()
    t = receiver.tracker.stats
    print(f"{out}: {frames} frames; {receiver.stats.references} references, "
          f"{receiver.stats.residuals} residuals, {t.garbage} bad datagrams, "
          f"{receiver.stats.errors} undecodable")  # fmt: skip
    return 0 if frames else 1
