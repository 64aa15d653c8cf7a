"""``appliance bench``: the frame path under load, as figures (not a pass/fail test)."""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.capture.loop import CaptureLoop
from appliance.capture.selector import SourceSelector
from appliance.capture.uri import open_source
from appliance.output.preview import JpegHub, PreviewSink
from appliance.pipeline import Passthrough, Pipeline, Stage

WARMUP_S = 1.0


def run_bench(
    source: str,
    width: int,
    height: int,
    fps: float,
    seconds: float,
    quality: int = 80,
    neural: bool = False,
) -> dict[str, Any]:
    """Capture -> passthrough (or the daemon's own stages) -> MJPEG for ``seconds``."""
    stages: list[Stage] = [Passthrough()]
    if neural:
        from appliance.app import build_stages
        from appliance.config import Config

        stages, error = build_stages(Config())
        if error:
            raise RuntimeError(error)
    pipeline = Pipeline(stages, [PreviewSink(JpegHub(), quality, 1000.0, always=True)])
    selector = SourceSelector(lambda: [source], lambda uri: open_source(uri, width, height, fps))
    capture = CaptureLoop(selector, pipeline.submit)
    pipeline.start()
    capture.start()
    try:
        time.sleep(WARMUP_S)
        pipeline.reset_stats()
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        stats = pipeline.stats()
        frames_out = stats["frames_out"]
        size = list(selector.current.size) if selector.current else [width, height]
    finally:
        capture.stop()
        pipeline.stop()
    if capture.failure is not None or frames_out == 0:
        raise RuntimeError(f"no frames came through from {source}: {selector.last_error}")
    return {
        "source": source,
        "size": size,
        "target_fps": fps,
        "seconds": round(wall, 2),
        "fps": round(frames_out / wall, 2),
        "dropped": stats["dropped"],
        "latency": stats["latency"],
        "cpu_percent": round(100.0 * cpu / wall, 1),
        "stages": stats["stages"],
    }


def format_report(result: dict[str, Any]) -> str:
    w, h = result["size"]
    lines = [
        f"source {result['source']} {w}x{h} @ {result['target_fps']:g} fps, "
        f"{result['seconds']:.1f} s measured",
        f"throughput  {result['fps']:.1f} fps, {result['dropped']} dropped, "
        f"CPU {result['cpu_percent']:.0f}% of one core",
        f"capture-to-output latency  p50 {result['latency']['p50_ms']:.1f} ms, "
        f"p99 {result['latency']['p99_ms']:.1f} ms",
        "",
        f"{'stage':<14}{'p50 ms':>9}{'p99 ms':>9}{'frames':>9}{'dropped':>9}{'errors':>8}",
    ]
    for name, st in result["stages"].items():
        lines.append(
            f"{name:<14}{st['p50_ms']:>9.2f}{st['p99_ms']:>9.2f}"
            f"{st['processed']:>9}{st['dropped']:>9}{st['errors']:>8}"
        )
    return "\n".join(lines)


def main(args: Any) -> int:
    if args.part == "tracking":
        return _main_tracking(args)
    if args.part == "codec":
        from appliance.codec.bench import main as codec_main

        return codec_main(args)
    if args.part == "enhance":
        from appliance.enhance.bench import main as enhance_main

        return enhance_main(args)
    if args.part == "align":
        from appliance.align.bench import main as align_main

        return align_main(args)
    width, height = args.size
    result = run_bench(
        args.source, width, height, args.fps, args.seconds, neural=args.stages == "daemon"
    )
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def _main_tracking(args: Any) -> int:
    from appliance.vision.bench import bench_tracking, format_tracking

    sizes = sorted({(640, 360), tuple(args.size)})
    result = bench_tracking(seconds=args.seconds, sizes=sizes)
    print(json.dumps(result) if args.json else format_tracking(result))
    return 0
