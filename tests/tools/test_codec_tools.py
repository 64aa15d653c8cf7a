"""The codec's figure tools on made-up evaluation results: the table gives each rung its
medians at the reference size, and the report reads the low end, the floors and the
BD-rates right and merges reruns."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest

from appliance.codec.evaluate import Point
from appliance.codec.ladder import CANDIDATES
from tools.codec_ladder import pixel_exponent, table
from tools.codec_report import clip_row, markdown, merge


def point(codec: str, setting: str, kbps: float, ms_ssim: float) -> dict:
    return asdict(Point(codec, setting, kbps, kbps * 5, ms_ssim, ms_ssim, 30.0, 1.5, 0,
                        {"sender_ms_p50": 9.0, "receiver_ms_mean": 6.0}))  # fmt: skip


def results() -> dict[str, dict]:
    cheap, middle, rich = (CANDIDATES[i].name for i in (0, 5, 14))
    points = [
        point("hybrid", cheap, 4.0, 0.80), point("hybrid", middle, 10.0, 0.93),
        point("hybrid", rich, 30.0, 0.96),
        point("av1", "3 kbit/s", 8.0, 0.85), point("av1", "16 kbit/s", 16.0, 0.92),
        point("av1", "40 kbit/s", 40.0, 0.965),
        point("x264", "16 kbit/s", 20.0, 0.70), point("x264", "40 kbit/s", 40.0, 0.93),
        point("x264", "80 kbit/s", 80.0, 0.97),
    ]  # fmt: skip
    return {"clip": {"points": points}}


def test_the_table_gives_each_rung_its_medians_at_the_reference():
    rows = table(results(), {"clip": (512, 512, 27.5)})
    assert [r["rung"] for r in rows] == [CANDIDATES[i].name for i in (0, 5, 14)]
    assert [r["kbps"] for r in rows] == pytest.approx([4.0, 10.0, 30.0])  # the reference
    assert all(r["clips_on_envelope"] == 1 for r in rows)
    full = next(r for r in CANDIDATES if r.side == 0)
    two = {
        "small": {"points": [point("hybrid", full.name, 10.0, 0.9)]},
        "large": {"points": [point("hybrid", full.name, 20.0, 0.9)]},
    }
    sizes = {"small": (256, 256, 27.5), "large": (1024, 1024, 27.5)}  # 16x the pixels
    assert pixel_exponent(two, sizes)[full.name] == pytest.approx(0.25)  # 2x the bits


def test_the_report_reads_the_low_end_floors_and_bd_rates():
    row = clip_row("clip", results()["clip"])
    assert row.lowest == (4.0, 0.80, 1.5) and row.best_low == (10.0, 0.93, 1.5)
    assert row.av1_floor == (8.0, 0.85)
    assert row.x264_ratio is not None and math.isclose(row.x264_ratio, 4.0)  # 40 / 10
    assert row.bd_av1 < 0 and row.bd_x264 < 0  # fewer bits for the same face
    assert row.worse_than_av1 == []  # the hybrid is better at every AV1 point it reaches
    assert row.envelope[0].startswith(CANDIDATES[0].name)
    assert "| clip |" in markdown([row]) and "**median**" in markdown([row])


def test_the_report_merges_reruns_point_by_point():
    first = results()
    first["clip"]["tracker"] = {"akd_computed": True, "self_akd_px": 0.0}
    rerun = {"points": [point("hybrid", CANDIDATES[0].name, 3.0, 0.82),
                        point("hybrid", CANDIDATES[20].name, 60.0, 0.97)],
             "tracker": {"akd_computed": False}}  # fmt: skip
    merged: dict[str, dict] = {}
    merge(merged, first)
    merge(merged, {"clip": rerun, "other": results()["clip"]})
    points = {(p["codec"], p["setting"]): p for p in merged["clip"]["points"]}
    assert len(points) == len(merged["clip"]["points"]) == 10  # one replaced, one added
    assert points[("hybrid", CANDIDATES[0].name)]["kbps"] == 3.0
    assert points[("av1", "16 kbit/s")]["kbps"] == 16.0  # the first run's other codecs stay
    assert merged["clip"]["tracker"]["akd_computed"] is True  # the AKD that was measured
    assert set(merged) == {"clip", "other"}
