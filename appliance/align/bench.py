"""``appliance bench align``: ms per frame of each alignment feature on one core.

The faces are tracked once per frame before the timed part (tracking has its own bench),
so each figure is the feature alone; the synthetic talking face at the bench size is the
input. ``stage, all on`` is the align stage with every feature switched on, the figure
that must fit in a 30 fps frame beside tracking. Background runs in its own stage
(thread), so it is listed apart, split into model, matte and composite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from appliance.align.frontalize import Frontalizer
from appliance.align.gaze import EyeContact
from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage
from appliance.frame import Frame

FRAMES = 90


def _tracked_frames(width: int, height: int, count: int, backend: Any) -> list[Frame]:
    from appliance.capture.synthetic import SyntheticSource
    from appliance.vision.stage import FaceTrackingStage

    source = SyntheticSource(width, height)
    tracking = FaceTrackingStage(backend, precision="fp32")
    try:
        frames = []
        for i in range(count):
            image, _ = source.render(i)
            frames.append(tracking.process(Frame(image, i, i / 30.0)))
        return frames
    finally:
        tracking.close()


def _time(frames: list[Frame], work: Callable[[Frame], Any]) -> dict[str, float]:
    samples = []
    for frame in frames:
        copy = Frame(frame.image.copy(), frame.seq, frame.t_capture, meta=dict(frame.meta))
        start = time.perf_counter()
        work(copy)
        samples.append((time.perf_counter() - start) * 1000.0)
    a = np.asarray(samples[10:])  # the first calls allocate
    return {"p50": round(float(np.median(a)), 2), "p99": round(float(np.percentile(a, 99)), 2)}


def bench_align(
    width: int = 1280, height: int = 720, frames: int = FRAMES, background_s: float = 2.0
) -> dict[str, Any]:
    from appliance.background.bench import bench_background
    from appliance.runtime.onnx import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(threads=1)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        tracked = _tracked_frames(width, height, frames, backend)
        on = AlignSettings(frontalize=True, eye_contact=True)
        identity = np.eye(2, 3)
        frontal, eyes = Frontalizer(on), EyeContact(on)

        features = {
            "framing + levelling": AlignStage(AlignSettings()).process,
            "frontalization": lambda f: frontal.apply(
                f.image, f.meta["faces"], identity, f.t_capture
            ),
            "eye contact": lambda f: eyes.apply(f.image, f.meta["faces"], f.t_capture),
            "align stage, all on": AlignStage(on).process,
        }
        return {
            "size": [width, height],
            "frames": frames,
            "faces_per_frame": float(np.mean([len(f.meta.get("faces") or []) for f in tracked])),
            "ms": {name: _time(tracked, work) for name, work in features.items()},
            "background": bench_background((width, height), background_s, backend=backend),
        }
    finally:
        cv2.setNumThreads(threads)


def format_align(result: dict[str, Any]) -> str:
    w, h = result["size"]
    lines = [
        f"alignment features at {w}x{h}, one core, {result['frames']} synthetic frames "
        f"({result['faces_per_frame']:.2f} faces per frame)",
        f"{'feature':<24}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for name, ms in result["ms"].items():
        lines.append(f"{name:<24}{ms['p50']:>9.2f}{ms['p99']:>9.2f}")
    background = result["background"]
    lines.append(f"background stage ({background['precision']} model), p50 / p99 ms:")
    for mode in ("blur", "replace"):
        parts = "  ".join(
            f"{part} {background[mode][part]['p50']:.2f}/{background[mode][part]['p99']:.2f}"
            for part in ("model", "matte", "composite", "total")
        )
        lines.append(f"  {mode:<8}{parts}")
    return "\n".join(lines)


def main(args: Any) -> int:
    width, height = args.size
    result = bench_align(width, height)
    print(json.dumps(result) if args.json else format_align(result))
    return 0
