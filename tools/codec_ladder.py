"""The hybrid's ladder from measured rate-distortion points (the tuning clips only).

    appliance codec eval .cache/clips/tune --codecs av1 --settings "" \\
        --rungs candidates --akd-every 0 --json > tune.json
    python -m tools.codec_ladder tune.json

For each candidate rung: its median cost over the clips (kbit/s at the ladder's
reference frame rate; the full-size rungs also at its reference area) and its median
face MS-SSIM. The ladder is the envelope of those medians: each rung better than every
cheaper one. Prints the table to paste into ``appliance/codec/ladder.py`` and, per
rung, on how many clips it was on that clip's own envelope.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from appliance.codec.ladder import CANDIDATES, REFERENCE_AREA, REFERENCE_FPS


def normalised(point: dict, fps: float, area: int, full: bool) -> float:
    kbps = point["kbps"] * REFERENCE_FPS / fps
    return kbps * REFERENCE_AREA / area if full else kbps


def ladder(results: dict[str, dict], sizes: dict[str, tuple[float, int]]) -> list[dict]:
    names = {rung.name: rung for rung in CANDIDATES}
    costs: dict[str, list[float]] = {n: [] for n in names}
    quality: dict[str, list[float]] = {n: [] for n in names}
    on_envelope: dict[str, int] = dict.fromkeys(names, 0)
    for clip, result in results.items():
        fps, area = sizes[clip]
        ours = [p for p in result["points"] if p["codec"] == "hybrid" and p["setting"] in names]
        best = -1.0
        for p in sorted(ours, key=lambda p: p["kbps"]):
            if p["ms_ssim"] > best:
                on_envelope[p["setting"]] += 1
                best = p["ms_ssim"]
        for p in ours:
            full = names[p["setting"]].side == 0
            costs[p["setting"]].append(normalised(p, fps, area, full))
            quality[p["setting"]].append(p["ms_ssim"])
    rows = [
        {"rung": n, "kbps": statistics.median(costs[n]), "ms_ssim": statistics.median(quality[n]),
         "clips_on_envelope": on_envelope[n], "clips": len(costs[n])}
        for n in names if costs[n]
    ]  # fmt: skip
    rows.sort(key=lambda r: r["kbps"])
    best, out = -1.0, []
    for row in rows:
        if row["ms_ssim"] > best:
            out.append(row)
            best = row["ms_ssim"]
    return out


def clip_sizes(results: dict[str, dict], folder: Path) -> dict[str, tuple[float, int]]:
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
        sizes[clip] = (float(fps), int(width * height))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="appliance codec eval --json output")
    parser.add_argument("--clips", type=Path, default=Path(".cache/clips/tune"))
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    rows = ladder(results, clip_sizes(results, args.clips))
    names = {rung.name: rung for rung in CANDIDATES}
    print("LADDER: tuple[Step, ...] = (")
    for row in rows:
        r = names[row["rung"]]
        step = f", fps={r.fps:g}" if r.fps else ""
        step += f", picture_quality={r.picture_quality}" if r.picture_quality != 40 else ""
        print(f"    Step(Rung({r.side}, {r.qp}{step}), {row['kbps']:.1f}),  "
              f"# MS-SSIM {row['ms_ssim']:.4f}, on {row['clips_on_envelope']} of "
              f"{row['clips']} clips' envelopes")  # fmt: skip
    print(")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
