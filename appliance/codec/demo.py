"""``appliance codec demo``: what a call looks like at the low end, as a picture.

For each clip, one moment (the middle frame), the face crop: the camera's frame, what
the hybrid's receiver shows at the ladder rung for ``kbps``, and what x264 and SVT-AV1
low delay show asked for the hybrid's measured rate (each labelled with the rate it
really reached, which at the low end is its floor, and the face MS-SSIM at native
size). Written to ``docs/images/codec-frames.jpg`` by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from appliance.codec import metrics
from appliance.codec.evaluate import find_clips, load_clip, run_call
from appliance.codec.ladder import ladder_for, start_rung

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "images"
KBPS = 8.0
TILE = 200


def _tile(image: np.ndarray, box: tuple[int, int, int, int], label: str) -> np.ndarray:
    x0, y0, x1, y1 = box
    tile = cv2.resize(image[y0:y1, x0:x1], (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (TILE, 18), (0, 0, 0), -1)
    cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)  # fmt: skip
    return tile


def demo(
    out: Path = DEFAULT_OUT, clips: list[Path] | None = None, frames: int = 300,
    kbps: float = KBPS,
) -> Path:  # fmt: skip
    from appliance.codec.baseline import encode_decode

    rows = []
    for path in clips or find_clips([]):
        clip = load_clip(path, frames)
        height, width = clip.frames[0].shape[:2]
        ladder = ladder_for(width, height, clip.fps)
        rung = ladder[start_rung(ladder, kbps, width, height, clip.fps)].rung
        call = run_call(clip, 0.0, 60, rung)
        x264 = encode_decode(clip.frames, clip.fps, "x264", call.kbps)
        av1 = encode_decode(clip.frames, clip.fps, "av1", call.kbps)
        found = [i for i in range(len(clip.frames)) if np.isfinite(clip.landmarks[i]).all()]
        if not found:
            continue
        index = found[len(found) // 2]
        frame, points = clip.frames[index], clip.landmarks[index]
        box = metrics.face_box(points, width, height)
        tiles = [_tile(frame, box, f"{clip.name} #{index}")]
        for name, picture, rate in (
            ("hybrid", call.pictures[index], call.kbps),
            ("x264", x264.decoded[index], x264.kbps),
            ("AV1", av1.decoded[index], av1.kbps),
        ):
            quality = metrics.face_ms_ssim(frame, picture, points)
            tiles.append(_tile(picture, box, f"{name} {rate:.1f} kbit/s {quality:.3f}"))
        rows.append(np.hstack(tiles))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "codec-frames.jpg"
    cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return path


def run(args) -> int:
    try:
        clips = find_clips(args.clips)
    except ValueError as exc:
        print(f"codec demo: {exc}", file=sys.stderr)
        return 2
    print(demo(args.out, clips, kbps=args.kbps))
    return 0
