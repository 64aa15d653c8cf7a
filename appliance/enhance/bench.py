"""``appliance bench enhance``: super-resolution ms on one core, per precision shipped.

The two sizes the issue names: a 256x256 face region to 512x512, and a 640x360 frame
to 1280x720. OpenCV and ONNX Runtime on one thread each; the picture is a real face
frame (the synthetic source) so the timing includes the colour handling.
"""

from __future__ import annotations

import json
import time
from typing import Any

import cv2
import numpy as np

from appliance.enhance.upscale import Upscaler
from appliance.runtime.bundle import factory_bundle_dir, load_manifest, model_file

SIZES = ((256, 256), (640, 360))
RUNS = 8


def bench_enhance(runs: int = RUNS) -> dict[str, Any]:
    from appliance.capture.synthetic import SyntheticSource
    from appliance.runtime.onnx import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(threads=1)
    manifest = load_manifest(factory_bundle_dir() / "sr_x2")
    frame, _ = SyntheticSource(1280, 720).render(0)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    result: dict[str, Any] = {"int8_gate": manifest["accuracy"]["int8"], "ms": {}}
    try:
        for precision in ("fp32", "int8"):
            if model_file(manifest, precision) is None:
                continue
            upscaler = Upscaler.load(backend, precision=precision)
            for width, height in SIZES:
                picture = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                upscaler.upscale(picture)  # the first run allocates
                samples = []
                for _ in range(runs):
                    start = time.perf_counter()
                    upscaler.upscale(picture)
                    samples.append((time.perf_counter() - start) * 1000.0)
                key = f"{width}x{height} -> {2 * width}x{2 * height}"
                result["ms"].setdefault(key, {})[precision] = round(float(np.median(samples)), 1)
    finally:
        cv2.setNumThreads(threads)
    return result


def format_enhance(result: dict[str, Any]) -> str:
    gate = result["int8_gate"]
    lines = ["super-resolution x2 on one core (ONNX Runtime), median ms:"]
    for size, by_precision in result["ms"].items():
        cells = "  ".join(f"{p} {ms:.1f}" for p, ms in by_precision.items())
        lines.append(f"  {size:<22}{cells}")
    if not gate["passed"]:
        lines.append(
            f"  INT8 not shipped: it loses {gate['value']:.3f} dB on Set5 "
            f"(gate {gate['threshold']} dB)"
        )
    return "\n".join(lines)


def main(args: Any) -> int:
    result = bench_enhance()
    print(json.dumps(result) if args.json else format_enhance(result))
    return 0
