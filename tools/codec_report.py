"""The closing figures of the hybrid from ``appliance codec eval --json`` output.

    python -m tools.codec_report a.json [b.json ...] [--plots DIR]

Per clip and as medians: the hybrid's lowest point; its best point at or below 12
kbit/s (face MS-SSIM, AKD) and the x264 rate for that face MS-SSIM; AV1's floor; BD-rate
against x264 (the whole range) and against AV1 over 5-40 kbit/s (points in that range
only, as the issue asks); the AV1 points where the hybrid is worse by more than the
noise; the rungs on the clip's own envelope (where the hybrid switches); ms per frame.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance.codec import metrics
from appliance.codec.evaluate import Point, below, curve, plot_all

LOW_END_KBPS = 12.0
BD_RANGE = (5.0, 40.0)


def _in(points: list[Point], codec: str, low: float, high: float) -> tuple[list, list]:
    rates, values = curve(points, codec)
    kept = [(r, v) for r, v in zip(rates, values, strict=True) if low <= r <= high]
    return [r for r, _ in kept], [v for _, v in kept]


def _bd(reference: tuple[list, list], test: tuple[list, list]) -> float:
    if len(reference[0]) < 2 or len(test[0]) < 2:
        return math.nan
    return metrics.bd_rate(*reference, *test)


@dataclass
class Row:
    clip: str
    lowest: tuple[float, float, float] | None  # kbps, MS-SSIM, AKD
    best_low: tuple[float, float, float] | None
    x264_ratio: float | None
    av1_floor: tuple[float, float] | None
    bd_x264: float
    bd_av1: float
    worse_than_av1: list[dict[str, float]]
    envelope: list[str]
    sender_ms: float
    receiver_ms: float


def _triple(p: Point | None) -> tuple[float, float, float] | None:
    return None if p is None else (p.kbps, p.ms_ssim, p.akd)


def clip_row(name: str, result: dict) -> Row:
    points = [Point(**p) for p in result["points"]]
    hybrid = sorted((p for p in points if p.codec == "hybrid"), key=lambda p: p.kbps)
    av1 = sorted((p for p in points if p.codec == "av1"), key=lambda p: p.kbps)
    low = [p for p in hybrid if p.kbps <= LOW_END_KBPS]
    best = max(low, key=lambda p: p.ms_ssim) if low else None
    x264 = curve(points, "x264")
    x264_rate = metrics.rate_at_quality(*x264, best.ms_ssim) if best and len(x264[0]) > 1 else None
    envelope, top = [], -1.0
    for p in hybrid:
        if p.ms_ssim > top:
            envelope.append(f"{p.setting} from {p.kbps:.1f}")
            top = p.ms_ssim
    return Row(
        name,
        _triple(hybrid[0] if hybrid else None),
        _triple(best),
        (x264_rate / best.kbps) if best and x264_rate else None,
        (av1[0].kbps, av1[0].ms_ssim) if av1 else None,
        _bd(x264, curve(points, "hybrid")),
        _bd(_in(points, "av1", *BD_RANGE), _in(points, "hybrid", *BD_RANGE)),
        below(points, "hybrid", "av1"),
        envelope,
        _median([p.extra.get("sender_ms_p50", math.nan) for p in hybrid]),
        _median([p.extra.get("receiver_ms_mean", math.nan) for p in hybrid]),
    )


def _f(value: object, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _point(values: tuple[float, ...] | None, specs: tuple[str, ...]) -> str:
    if values is None:
        return "–"
    return ", ".join(_f(v, spec) for v, spec in zip(values, specs, strict=False))


def markdown(rows: list[Row]) -> str:
    lines = [
        "| clip | lowest: kbit/s, MS-SSIM, AKD | best ≤ 12 kbit/s: kbit/s, MS-SSIM, AKD "
        "| x264 rate ratio there | AV1 floor: kbit/s, MS-SSIM | BD vs x264 | BD vs AV1 "
        "(5–40) | AV1 points worse | ms send / receive |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    triple = (".1f", ".3f", ".2f")
    for r in rows:
        lines.append(
            f"| {r.clip} | {_point(r.lowest, triple)} | {_point(r.best_low, triple)} "
            f"| {_f(r.x264_ratio, '.2f')} | {_point(r.av1_floor, triple)} "
            f"| {_f(r.bd_x264, '+.0f')}% | {_f(r.bd_av1, '+.0f')}% "
            f"| {len(r.worse_than_av1)} | {_f(r.sender_ms, '.1f')} / {_f(r.receiver_ms, '.1f')} |"
        )
    best = [r.best_low for r in rows if r.best_low]
    lines.append(
        f"| **median** | | {_f(_median([b[1] for b in best]))} MS-SSIM, "
        f"{_f(_median([b[2] for b in best]), '.2f')} px "
        f"| {_f(_median([r.x264_ratio for r in rows]), '.2f')} | "
        f"| {_f(_median([r.bd_x264 for r in rows]), '+.0f')}% "
        f"| {_f(_median([r.bd_av1 for r in rows]), '+.0f')}% | | |"
    )
    return "\n".join(lines)


def _median(values: list[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def merge(results: dict[str, dict], more: dict[str, dict]) -> None:
    """Adds ``more`` to ``results``: a clip in both keeps every point, and a later run of
    the same codec and setting replaces the earlier (rerun one codec, keep the others)."""
    for clip, result in more.items():
        if clip not in results:
            results[clip] = result
            continue
        kept = results[clip]
        new = {(p["codec"], p["setting"]) for p in result["points"]}
        old = [p for p in kept["points"] if (p["codec"], p["setting"]) not in new]
        kept["points"] = old + result["points"]
        if result["tracker"].get("akd_computed") or not kept["tracker"].get("akd_computed"):
            kept["tracker"] = result["tracker"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--plots", type=Path, help="write the grid of curves here")
    parser.add_argument("--json", type=Path, help="write the merged results here")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    for path in args.results:
        merge(results, json.loads(path.read_text()))
    rows = [clip_row(name, result) for name, result in sorted(results.items())]
    print(markdown(rows))
    print()
    for r in rows:
        print(f"{r.clip}: switches {'; '.join(r.envelope)}")
        for w in r.worse_than_av1:
            print(
                f"  worse than AV1 at {w['kbps']:.1f} kbit/s: {_f(w['av1'])} vs {_f(w['hybrid'])}"
            )
    if args.plots:
        plot_all(results, args.plots)
    if args.json:
        args.json.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
