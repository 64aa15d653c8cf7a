"""Head roll, yaw and pitch before and after correction, measured on real clips.

Each clip runs through the tracker, then the align stage (levelling and frontalization,
no re-framing so the picture keeps its size), then a second, independent tracker on the
corrected picture: the table compares what that tracker sees with what the first one
saw. The angles come from the head-pose solver, not from the eye line that levelling
itself uses, so the figure is not the corrector grading its own input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage
from appliance.frame import Frame
from appliance.runtime.base import Backend
from appliance.vision.stage import FaceTrackingStage

EVAL_SETTINGS = AlignSettings(framing=False, level=True, frontalize=True)


@dataclass(frozen=True)
class ClipRow:
    clip: str
    frames: int
    measured: int  # frames with a pose both before and after
    before: tuple[float, float, float]  # mean |roll|, |yaw|, |pitch| in degrees
    after: tuple[float, float, float]


def read_clip(path: Path, limit: int | None = None) -> Iterator[tuple[np.ndarray, float]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"{path}: cannot open the clip")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        index = 0
        while limit is None or index < limit:
            ok, image = cap.read()
            if not ok:
                return
            yield image, index / fps
            index += 1
    finally:
        cap.release()


def evaluate_clip(
    path: Path,
    backend: Backend,
    settings: AlignSettings = EVAL_SETTINGS,
    limit: int | None = None,
) -> ClipRow:
    seen = FaceTrackingStage(backend, precision="fp32")
    again = FaceTrackingStage(backend, precision="fp32")
    align = AlignStage(settings)
    before: list[tuple[float, float, float]] = []
    after: list[tuple[float, float, float]] = []
    frames = 0
    try:
        for index, (image, t) in enumerate(read_clip(path, limit)):
            frames += 1
            frame = align.process(seen.process(Frame(image, index, t)))
            first = _pose(frame.meta.get("faces_source") or frame.meta.get("faces"))
            second = _pose(again.process(Frame(frame.image, index, t)).meta.get("faces"))
            if first is not None and second is not None:
                before.append(first)
                after.append(second)
    finally:
        seen.close()
        again.close()
    return ClipRow(path.stem, frames, len(before), _mean_abs(before), _mean_abs(after))


def _pose(faces: Sequence[object] | None) -> tuple[float, float, float] | None:
    if not faces:
        return None
    pose = getattr(faces[0], "pose", None)
    return None if pose is None else (pose.roll, pose.yaw, pose.pitch)


def _mean_abs(values: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    m = np.abs(np.asarray(values)).mean(axis=0)
    return float(m[0]), float(m[1]), float(m[2])


def markdown_table(rows: Sequence[ClipRow]) -> str:
    lines = [
        "| clip | frames | measured | roll before | roll after | yaw before | yaw after "
        "| pitch before | pitch after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        (rb, yb, pb), (ra, ya, pa) = r.before, r.after
        lines.append(
            f"| {r.clip} | {r.frames} | {r.measured} | {rb:.2f}° | {ra:.2f}° | {yb:.2f}° "
            f"| {ya:.2f}° | {pb:.2f}° | {pa:.2f}° |"
        )
    return "\n".join(lines)
