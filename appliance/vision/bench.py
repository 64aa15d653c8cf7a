"""Face tracking figures on one core: detection, mesh, iris, pose ms and fps per size.

``appliance bench tracking`` calls :func:`bench_tracking`; it runs the tracker directly on frames
(no capture pacing, no queues) so the figures are the vision work alone. ONNX Runtime
runs each network on one intra-op thread and OpenCV is held to one thread for the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.runtime.base import Backend
from appliance.vision.stage import FaceTrackingStage, VisionSettings

SIZES = ((640, 360), (1280, 720))
WARMUP_FRAMES = 10  # first detections and allocations: not what a running camera costs

FrameSource = Sequence[np.ndarray] | Callable[[int, int], Iterator[np.ndarray]]


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit ``width`` x ``height`` (aspect kept), centred on black."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def _synthetic(width: int, height: int) -> Iterator[np.ndarray]:
    from appliance.capture.synthetic import SyntheticSource

    source = SyntheticSource(width, height)
    index = 0
    while True:
        yield source.render(index)[0]
        index += 1


def _frames(source: FrameSource | None, width: int, height: int) -> Iterator[np.ndarray]:
    if source is None:
        yield from _synthetic(width, height)
    elif callable(source):
        yield from source(width, height)
    else:
        if not source:
            raise ValueError("bench_tracking: no frames given")
        prepared = [fit(f, width, height) for f in source]  # outside the timed loop
        while True:
            yield from prepared


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0}
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "mean": round(float(a.mean()), 3),
    }


def bench_tracking(
    source_frames: FrameSource | None = None,
    seconds: float = 5.0,
    sizes: Sequence[tuple[int, int]] = SIZES,
    backend: Backend | None = None,
    bundles_dir: Path | None = None,
    settings: VisionSettings | None = None,
) -> dict[str, Any]:
    """Run the tracker for ``seconds`` per size; per-component ms and fps.

    ``source_frames``: frames (any size; each is fitted into the bench size, aspect kept,
    and they are cycled), or a function ``(width, height) -> iterator of frames``, or
    None for the synthetic source rendered at each size. Component figures are per call
    (``detect_ms``: one detector run; ``mesh_ms``: one mesh run; ``iris_ms``: both eyes
    of one face; ``pose_ms``: one solve); ``frame_ms`` and ``fps`` cover everything
    the stage does per frame, detector runs included.
    """
    if backend is None:
        from appliance.runtime.onnx import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(threads=1)
    stage = FaceTrackingStage(backend, bundles_dir, settings or VisionSettings())
    tracker = stage.tracker
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    result: dict[str, Any] = {
        "backend": backend.name,
        "threads": getattr(backend, "threads", None),
        "precision": {
            n.model.name: n.model.precision
            for n in (stage.detector.net, stage.mesh.net, stage.iris.net)
        },
        "seconds": seconds,
        "sizes": {},
    }
    try:
        for width, height in sizes:
            tracker.reset()
            per_call: dict[str, list[float]] = {"detect": [], "mesh": [], "iris": [], "pose": []}
            frame_ms: list[float] = []
            faces = 0
            frames = _frames(source_frames, width, height)
            for _ in range(WARMUP_FRAMES):
                tracker.update(next(frames), time.monotonic())
            deadline = time.perf_counter() + seconds
            busy = 0.0
            while time.perf_counter() < deadline:
                image = next(frames)
                start = time.perf_counter()
                tracks = tracker.update(image, time.monotonic())
                took = time.perf_counter() - start
                busy += took
                frame_ms.append(took * 1000.0)
                faces += len(tracks)
                for name, total in tracker.timer.last.items():
                    calls = tracker.timer.calls[name]
                    per_call.setdefault(name, []).extend([total / calls] * calls)
            n = len(frame_ms)
            result["sizes"][f"{width}x{height}"] = {
                "frames": n,
                "fps": round(n / busy, 1) if busy > 0 else 0.0,
                "faces_per_frame": round(faces / max(n, 1), 3),
                "frame_ms": _stats(frame_ms),
                **{f"{name}_ms": _stats(v) for name, v in per_call.items()},
                "detect_runs": len(per_call["detect"]),
            }
    finally:
        cv2.setNumThreads(threads)
        stage.close()
    return result


def format_tracking(result: dict[str, Any]) -> str:
    precision = ", ".join(f"{k} {v}" for k, v in result["precision"].items())
    lines = [
        f"face tracking on {result['backend']} ({result['threads']} thread): {precision}",
        f"{'size':<11}{'fps':>7}{'frame p50':>11}{'p99':>8}{'detect':>9}{'mesh':>8}"
        f"{'iris':>8}{'pose':>8}  (ms; detect/mesh/iris/pose per call)",
    ]
    for size, r in result["sizes"].items():
        lines.append(
            f"{size:<11}{r['fps']:>7.1f}{r['frame_ms']['p50']:>11.2f}{r['frame_ms']['p99']:>8.2f}"
            f"{r['detect_ms']['p50']:>9.2f}{r['mesh_ms']['p50']:>8.2f}"
            f"{r['iris_ms']['p50']:>8.2f}{r['pose_ms']['p50']:>8.2f}"
        )
    return "\n".join(lines)
