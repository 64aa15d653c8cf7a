"""``appliance align demo``: before/after pictures of each feature for the docs.

Every picture is produced by the real stages on real frames (the clips in
``../shared/data/clips``) or on the synthetic source where a known input is needed (a
gaze 10 degrees below the lens); the stages run over the preceding frames first, so the
smoothing has settled as it would in a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.align.evaluate import read_clip
from appliance.align.gaze import EYES
from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage
from appliance.frame import Frame
from appliance.pipeline.stage import Stage
from appliance.vision.stage import FaceTrackingStage

LABEL_SCALE = 0.8
Pick = Callable[[Frame], float]  # a score: the demo shows the frame where it is largest


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, 2)
    cv2.rectangle(out, (0, 0), (w + 16, h + 16), (0, 0, 0), -1)
    cv2.putText(out, text, (8, h + 8), cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, (255, 255, 255), 2)
    return out


def side_by_side(before: np.ndarray, after: np.ndarray, height: int = 360) -> np.ndarray:
    def fit(image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        scale = height / image.shape[0]
        size = (round(image.shape[1] * scale), height)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    gap = np.full((height, 8, 3), 255, np.uint8)
    return np.hstack([labelled(fit(before), "before"), gap, labelled(fit(after), "after")])


def best_pair(
    frames: Iterator[tuple[np.ndarray, float]],
    tracking: FaceTrackingStage,
    stages: list[Stage],
    pick: Pick,
) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) of the frame where ``pick`` scores highest, the stages having run
    on every frame up to it."""
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    tracking.tracker.reset()
    for index, (image, t) in enumerate(frames):
        frame = tracking.process(Frame(image.copy(), index, t))
        score = pick(frame)
        result: Frame | None = frame
        for stage in stages:
            result = stage.process(result) if result is not None else None
        if result is not None and (best is None or score > best[0]):
            best = (score, image, result.image)
    if best is None:
        raise ValueError("no frames to pick from")
    return best[1], best[2]


def _pose_angle(axis: str) -> Pick:
    def pick(frame: Frame) -> float:
        faces = frame.meta.get("faces") or []
        pose = getattr(faces[0], "pose", None) if faces else None
        return abs(getattr(pose, axis)) if pose is not None else -1.0

    return pick


def _last(frame: Frame) -> float:
    return float(frame.seq)


def _synthetic(width: int, height: int, count: int, **options: Any) -> Iterator[Any]:
    from appliance.capture.synthetic import SyntheticSource

    source = SyntheticSource(width, height, **options)
    for i in range(count):
        yield source.render(i)[0], i / 30.0


def write_demo(out_dir: Path, data_dir: Path) -> list[Path]:
    from appliance.config.schema import Config
    from appliance.runtime.onnx import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(threads=1)
    tracking = FaceTrackingStage(backend, precision="fp32")
    clip = data_dir / "clips" / "lp_d20.mp4"
    if not clip.is_file():
        raise FileNotFoundError(f"{clip}: the demo needs the shared clips")

    def background(mode: str) -> Stage:
        from appliance.background.stage import BackgroundStage

        config = Config.model_validate({"background": {"mode": mode}})
        return BackgroundStage.from_config(config, backend=backend)

    level = AlignStage(AlignSettings(framing=False))
    frontal = AlignStage(AlignSettings(framing=False, level=False, frontalize=True))
    eyes = AlignStage(AlignSettings(framing=False, level=False, eye_contact=True))
    shots: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "framing": best_pair(_synthetic(1280, 720, 90), tracking, [AlignStage()], _last),
        "levelling": best_pair(read_clip(clip, 120), tracking, [level], _pose_angle("roll")),
        "frontalization": best_pair(read_clip(clip, 120), tracking, [frontal], _pose_angle("yaw")),
        "eye-contact": _eye_crop(
            best_pair(_synthetic(1280, 720, 20, gaze_deg=10.0), tracking, [eyes], _last),
            tracking,
        ),
        "background-blur": best_pair(read_clip(clip, 30), tracking, [background("blur")], _last),
        "background-replace": best_pair(
            read_clip(clip, 30), tracking, [background("replace")], _last
        ),
    }
    tracking.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (before, after) in shots.items():
        path = out_dir / f"align-{name}.jpg"
        cv2.imwrite(str(path), side_by_side(before, after), [cv2.IMWRITE_JPEG_QUALITY, 88])
        written.append(path)
    return written


def _eye_crop(
    pair: tuple[np.ndarray, np.ndarray], tracking: FaceTrackingStage
) -> tuple[np.ndarray, np.ndarray]:
    """The eyes, enlarged: a gaze correction of a few pixels is invisible at full size."""
    before, after = pair
    tracking.tracker.reset()
    faces = tracking.process(Frame(before.copy(), 0, 0.0)).meta.get("faces") or []
    if not faces:
        return pair
    eyes = faces[0].landmarks[[i for eye in EYES for i in eye.contour], :2]
    (x0, y0), (x1, y1) = eyes.min(axis=0), eyes.max(axis=0)
    pad = 0.25 * (x1 - x0)
    box = slice(int(y0 - pad), int(y1 + pad)), slice(int(x0 - pad), int(x1 + pad))
    return before[box], after[box]
