"""``appliance codec demo``: what a call looks like at the low end, as a picture.

For each clip: the camera's frame, what this codec's receiver shows, and what x264 shows
at the same bitrate (x264 is asked for our measured rate). Three moments per clip (a
quarter, half and three quarters in), the face crop, labelled with the bitrate and the
face MS-SSIM. Written to ``docs/images/codec-frames.jpg`` by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from appliance.codec import metrics
from appliance.codec.evaluate import DEFAULT_DATA, load_clip, run_call

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "images"
CLIPS = ("lp_d6", "lp_d10", "lp_d14")
SETTING = (0.75, 25)  # floor, reference quality: the low end of the evaluation
TILE = 200


def _tile(image: np.ndarray, box: tuple[int, int, int, int], label: str) -> np.ndarray:
    x0, y0, x1, y1 = box
    tile = cv2.resize(image[y0:y1, x0:x1], (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (TILE, 18), (0, 0, 0), -1)
    cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)  # fmt: skip
    return tile


def demo(out: Path = DEFAULT_OUT, clips: tuple[str, ...] = CLIPS, frames: int = 300) -> Path:
    from appliance.codec.baseline import encode_decode

    rows = []
    for name in clips:
        clip = load_clip(DEFAULT_DATA / "clips" / f"{name}.mp4", frames)
        call = run_call(clip, *SETTING)
        ours, kbps = call.pictures, call.kbps
        x264 = encode_decode(clip.frames, clip.fps, "x264", kbps)
        for index in (len(clip.frames) // 4, len(clip.frames) // 2, 3 * len(clip.frames) // 4):
            frame, points = clip.frames[index], clip.landmarks[index]
            height, width = frame.shape[:2]
            box = metrics.face_box(points, width, height)
            q_ours = metrics.face_ms_ssim(frame, ours[index], points)
            q_x264 = metrics.face_ms_ssim(frame, x264.decoded[index], points)
            rows.append(np.hstack([
                _tile(frame, box, f"{name} #{index}: camera"),
                _tile(ours[index], box, f"keypoints {kbps:.0f} kbit/s {q_ours:.3f}"),
                _tile(x264.decoded[index], box, f"x264 {x264.kbps:.0f} kbit/s {q_x264:.3f}"),
            ]))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / "codec-frames.jpg"
    cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return path


def run(args) -> int:
    missing = [c for c in CLIPS if not (DEFAULT_DATA / "clips" / f"{c}.mp4").is_file()]
    if missing:
        print(f"the demo needs ../shared/data/clips ({', '.join(missing)} missing)",
              file=sys.stderr)  # fmt: skip
        return 2
    print(demo(args.out))
    return 0
