"""``appliance bench codec``: the face codec's costs per frame, one CPU core.

On a real 512x512 talking-head clip (``../shared/data/clips/lp_d14.mp4``, its landmarks
tracked once and cached): the keypoint encoder after the landmarks (analysis,
quantization, prediction, entropy coding, the packet), the sender's whole frame with
the closed loop (it renders what the receiver will show and measures it), and the
receiver (parse, decode, render); and the hybrid's stream mode at the dearest rung of its
ladder that still fuses (256² pixels, every frame): the sender's frame (scale, AV1
encode, its own decode and the coverage that decides when a new picture is due) and the
receiver's (AV1 decode, fusion). OpenCV on one
thread, like a pipeline stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.codec.evaluate import DEFAULT_DATA, load_clip
from appliance.codec.hybrid import Rung
from appliance.codec.ladder import TABLE
from appliance.codec.session import CodecSettings, Receiver, Sender

CLIP = DEFAULT_DATA / "clips" / "lp_d14.mp4"
FRAMES = 300


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def bench_codec(clip_path: Path = CLIP, frames: int = FRAMES) -> dict[str, Any]:
    if not clip_path.is_file():
        raise RuntimeError(f"{clip_path} is missing: the codec bench needs ../shared/data")
    cv2.setNumThreads(1)
    clip = load_clip(clip_path, frames)
    height, width = clip.frames[0].shape[:2]
    settings = CodecSettings(floor=0.8, reference_quality=40)
    sender = Sender(width, height, clip.fps, settings, stream=1)
    receiver = Receiver()
    encode_ms, send_ms, receive_ms = [], [], []
    for index, frame in enumerate(clip.frames):
        start = time.perf_counter()
        datagrams = sender.send(frame, clip.landmarks[index], index, clip.iris[index])
        send_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        for datagram in datagrams:
            receiver.feed(datagram)
        receive_ms.append((time.perf_counter() - start) * 1e3)
    # the keypoint encoder alone, after the landmarks, on a fresh chain over the same frames
    alone = Sender(width, height, clip.fps, CodecSettings(closed_loop=False), stream=2)
    alone.send(clip.frames[0], clip.landmarks[0], 0, clip.iris[0])  # its reference
    for index in range(1, len(clip.frames)):
        start = time.perf_counter()
        packet, _ = alone._encode(clip.landmarks[index], clip.iris[index])
        alone._keypoints(packet, index)
        encode_ms.append((time.perf_counter() - start) * 1e3)
    receive = _ms(receive_ms)
    # the dearest rung that still fuses, every frame: the worst case of the fused path
    rung = [step.rung for step in TABLE if step.rung.side and not step.rung.fps][-1]
    hybrid_send, hybrid_receive, hybrid_bytes = _hybrid(clip, rung)
    return {
        "clip": clip_path.name,
        "size": f"{width}x{height}",
        "frames": len(clip.frames),
        "keypoint_encoder_ms": _ms(encode_ms),
        "sender_with_closed_loop_ms": _ms(send_ms),
        "receiver_ms": receive,
        "receiver_fps_p50": 1000.0 / receive["p50"],
        "bytes_per_frame": sender.stats.total_bytes / len(clip.frames),
        "hybrid_rung": rung.name,
        "hybrid_sender_ms": _ms(hybrid_send),
        "hybrid_receiver_ms": _ms(hybrid_receive),
        "hybrid_bytes_per_frame": hybrid_bytes,
    }


def _hybrid(clip: Any, rung: Rung) -> tuple[list[float], list[float], float]:
    height, width = clip.frames[0].shape[:2]
    sender = Sender(width, height, clip.fps, CodecSettings(rung=rung), stream=3)
    receiver = Receiver()
    send_ms, receive_ms = [], []
    for index, frame in enumerate(clip.frames):
        start = time.perf_counter()
        datagrams = sender.send(frame, clip.landmarks[index], index)
        send_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        for datagram in datagrams:
            receiver.feed(datagram)
        receive_ms.append((time.perf_counter() - start) * 1e3)
    sender.close()
    return send_ms, receive_ms, sender.stats.total_bytes / len(clip.frames)


def format_codec(r: dict[str, Any]) -> str:
    def line(name: str, ms: dict[str, float]) -> str:
        return f"  {name:32s} p50 {ms['p50']:6.2f} ms  p99 {ms['p99']:6.2f} ms"

    return "\n".join(
        [
            f"keypoint codec, {r['clip']} {r['size']}, {r['frames']} frames, one core:",
            line("keypoint encoder (after landmarks)", r["keypoint_encoder_ms"]),
            line("sender incl. closed loop", r["sender_with_closed_loop_ms"]),
            line("receiver (decode + render)", r["receiver_ms"]),
            f"  receiver: {r['receiver_fps_p50']:.0f} fps at p50; "
            f"{r['bytes_per_frame']:.0f} bytes/frame at floor 0.80",
            f"hybrid, stream mode at {r['hybrid_rung']}:",
            line("sender (scale, encode, decode, cover)", r["hybrid_sender_ms"]),
            line("receiver (decode + fuse)", r["hybrid_receiver_ms"]),
            f"  {r['hybrid_bytes_per_frame']:.0f} bytes/frame",
        ]
    )


def main(args: Any) -> int:
    result = bench_codec()
    print(json.dumps(result) if args.json else format_codec(result))
    return 0
