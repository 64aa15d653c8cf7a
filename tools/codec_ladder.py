"""The hybrid's ladder from measured rate-distortion points (the tuning clips only).

    appliance codec eval .cache/clips/tune --codecs av1 --settings "" \\
        --rungs candidates --akd-every 0 --json > tune.json
    python -m tools.codec_ladder tune.json

For each candidate rung: its median cost over the clips (kbit/s scaled to the table's
reference pixels and frame rate by ``ladder.scale``) and its median face MS-SSIM.
Prints the table to paste into ``appliance/codec/ladder.py`` (a stream's ladder is
picked from it for its frame size), per rung on how many clips it was on that clip's
own envelope, and the fit of how the full-size rungs' cost grows with the frame's
pixels (``ladder.ALPHA``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from appliance.codec.ladder import CANDIDATES, scale

Size = tuple[int, int, float]  # width, height, fps


def table(results: dict[str, dict], sizes: dict[str, Size]) -> list[dict]:
    """Every candidate that ran: median cost at the reference, median face MS-SSIM, and
    on how many clips it was on the clip's own envelope; cheapest first."""
    names = {rung.name: rung for rung in CANDIDATES}
    costs: dict[str, list[float]] = {n: [] for n in names}
    quality: dict[str, list[float]] = {n: [] for n in names}
    on_envelope: dict[str, int] = dict.fromkeys(names, 0)
    for clip, result in results.items():
        ours = [p for p in result["points"] if p["codec"] == "hybrid" and p["setting"] in names]
        best = -1.0
        for p in sorted(ours, key=lambda p: p["kbps"]):
            if p["ms_ssim"] > best:
                on_envelope[p["setting"]] += 1
                best = p["ms_ssim"]
        for p in ours:
            costs[p["setting"]].append(p["kbps"] / scale(names[p["setting"]], *sizes[clip]))
            quality[p["setting"]].append(p["ms_ssim"])
    rows = [
        {"rung": n, "kbps": statistics.median(costs[n]), "ms_ssim": statistics.median(quality[n]),
         "clips_on_envelope": on_envelope[n], "clips": len(costs[n])}
        for n in names if costs[n]
    ]  # fmt: skip
    return sorted(rows, key=lambda r: r["kbps"])


def pixel_exponent(results: dict[str, dict], sizes: dict[str, Size]) -> dict[str, float]:
    """Per full-size rung, the slope of log cost on log pixels across the clips."""
    fits = {}
    for rung in CANDIDATES:
        if rung.side:
            continue
        pairs = [
            (sizes[clip][0] * sizes[clip][1], p["kbps"])
            for clip, result in results.items()
            for p in result["points"]
            if p["codec"] == "hybrid" and p["setting"] == rung.name and p["kbps"] > 0
        ]
        if len({area for area, _ in pairs}) >= 2:
            x, y = np.log([a for a, _ in pairs]), np.log([k for _, k in pairs])
            fits[rung.name] = float(np.polyfit(x, y, 1)[0])
    return fits


def clip_sizes(results: dict[str, dict], folder: Path) -> dict[str, Size]:
    import cv2

    sizes = {}
    for clip in results:
        capture = cv2.VideoCapture(str(folder / f"{clip}.mp4"))
        fps = capture.get(cv2.CAP_PROP_FPS)
        width = capture.get(cv2.CAP_PROP_FRAME_WIDTH)
        height = capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        capture.release()
        if not fps or not width:
            raise SystemExit(f"cannot read {folder / clip}.mp4")
        sizes[clip] = (int(width), int(height), float(fps))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="appliance codec eval --json output")
    parser.add_argument("--clips", type=Path, default=Path(".cache/clips/tune"))
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    sizes = clip_sizes(results, args.clips)
    names = {rung.name: rung for rung in CANDIDATES}
    print("TABLE: tuple[Step, ...] = (")
    for row in table(results, sizes):
        r = names[row["rung"]]
        step = f", fps={r.fps:g}" if r.fps else ""
        step += f", picture_quality={r.picture_quality}" if r.picture_quality != 40 else ""
        print(f"    Step(Rung({r.side}, {r.qp}{step}), {row['kbps']:.1f}, {row['ms_ssim']:.4f}),"
              f"  # on {row['clips_on_envelope']} of {row['clips']}")  # fmt: skip
    print(")")
    for name, slope in pixel_exponent(results, sizes).items():
        print(f"# {name}: cost grows as pixels**{slope:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
