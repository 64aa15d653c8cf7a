"""Background figures on one core: model, matte and composite ms per frame.

Runs the stage directly on synthetic frames (no capture pacing, no queues), with OpenCV
held to one thread and ONNX Runtime given one intra-op thread, so the figures are what
the stage costs one pipeline thread. ``python -m appliance.background.bench [WxH]``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import cv2
import numpy as np

from appliance.background.stage import BackgroundSettings, BackgroundStage
from appliance.frame import Frame
from appliance.runtime.base import Backend

WARMUP_FRAMES = 10  # first runs allocate: not what a running camera costs
PARTS = ("model", "matte", "composite")


def bench_background(
    size: tuple[int, int] = (1280, 720),
    seconds: float = 3.0,
    modes: tuple[str, ...] = ("blur", "replace"),
    backend: Backend | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Median (p50) and p99 ms per part and in all, per mode, at ``size``."""
    from appliance.capture.synthetic import SyntheticSource

    if backend is None:
        from appliance.runtime.onnx import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(threads=1)
    source = SyntheticSource(*size)
    frames = [source.render(i)[0] for i in range(0, 60, 2)]  # outside the timed loop
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    stage = BackgroundStage(backend=backend, precision=precision)
    try:
        result: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "backend": backend.name}
        result["precision"] = stage.segmenter.model.precision
        for mode in modes:
            stage.settings = BackgroundSettings(mode=mode)
            result[mode] = _run(stage, frames, seconds)
        return result
    finally:
        cv2.setNumThreads(threads)
        stage.close()


def _run(stage: BackgroundStage, frames: list[np.ndarray], seconds: float) -> dict[str, Any]:
    samples: dict[str, list[float]] = {p: [] for p in (*PARTS, "total")}
    end = None
    n = 0
    while end is None or time.perf_counter() < end:
        image = frames[n % len(frames)]
        start = time.perf_counter()
        stage.process(Frame(image, n, t_capture=n / 30.0))
        total = (time.perf_counter() - start) * 1e3
        n += 1
        if n == WARMUP_FRAMES:
            end = time.perf_counter() + seconds
        if n > WARMUP_FRAMES:
            for part in PARTS:
                samples[part].append(stage.last_ms[part])
            samples["total"].append(total)
    out: dict[str, Any] = {"frames": len(samples["total"])}
    for part, values in samples.items():
        a = np.asarray(values)
        out[part] = {
            "p50": round(float(np.median(a)), 2),
            "p99": round(float(np.percentile(a, 99)), 2),
        }
    return out


if __name__ == "__main__":
    w, h = (int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "1280x720").split("x"))
    print(json.dumps(bench_background((w, h)), indent=2))
