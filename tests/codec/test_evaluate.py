"""``appliance codec eval``: every codec measured the same way, figures that hang together."""

from __future__ import annotations

import json

from appliance.cli import main
from appliance.codec.evaluate import Point, evaluate, summarize

from .conftest import DATA


def test_eval_measures_our_codec_and_x264_on_a_real_clip(tmp_path):
    clip = DATA / "clips" / "lp_d0.mp4"
    results = evaluate([clip], [(0.8, 40)], [40.0], ["x264"], frames=16, akd_every=8,
                       plots=tmp_path, progress=lambda _m: None)  # fmt: skip
    points = results["lp_d0"]["points"]
    assert [p["codec"] for p in points] == ["keypoints", "x264"]
    ours, x264 = points
    assert ours["kbps"] > 0 and x264["kbps"] > 0
    assert 0.8 <= ours["ms_ssim_min"] <= ours["ms_ssim"] <= 1.0  # the floor held
    assert ours["extra"]["keypoint_bytes_per_frame"] < 120
    assert ours["extra"]["references"] >= 1
    assert ours["akd"] < 10 and ours["akd_missed"] == 0  # the tracker finds the face
    assert (tmp_path / "rd-lp_d0-ms_ssim.png").stat().st_size > 1000
    assert (tmp_path / "rd-lp_d0-akd.png").stat().st_size > 1000


def point(codec, kbps, ssim, akd):
    return Point(codec, "", kbps, kbps, ssim, ssim, 30.0, akd, 0)


def test_summary_compares_our_lowest_point_with_x264_at_the_same_rate():
    points = [
        point("x264", 10, 0.70, 9.0), point("x264", 40, 0.90, 3.0),
        point("keypoints", 20, 0.85, 2.0), point("keypoints", 80, 0.95, 1.5),
    ]  # fmt: skip
    summary = summarize(points)
    assert abs(summary["x264_at_same_kbps"]["ms_ssim"] - 0.80) < 1e-9  # halfway in log rate
    assert abs(summary["x264_at_same_kbps"]["akd"] - 6.0) < 1e-9
    assert summary["better_than_x264_at_same_rate"] is True
    # x264 reaches 0.85 at 10 * 4 ** 0.75 kbit/s
    assert abs(summary["x264_kbps_at_equal_ms_ssim"] - 10 * 4**0.75) < 1e-6
    assert abs(summary["bitrate_ratio"] - 10 * 4**0.75 / 20) < 1e-6
    assert summary["beats_x264_at_low_end"] is True


def test_below_x264s_lowest_rate_we_are_judged_against_that_point():
    x264 = [point("x264", 12, 0.60, 8.0), point("x264", 40, 0.90, 3.0)]
    cheaper = summarize([*x264, point("keypoints", 9, 0.80, 2.0)])
    assert cheaper["better_than_x264_at_same_rate"] is False  # x264 has no figure at 9
    assert cheaper["x264_points_beaten"] == [""] and cheaper["beats_x264_at_low_end"] is True
    worse = summarize([*x264, point("keypoints", 9, 0.55, 2.0)])  # a worse face: no win
    assert worse["x264_points_beaten"] == [] and worse["beats_x264_at_low_end"] is False
    jumpy = summarize([*x264, point("keypoints", 9, 0.80, 9.0)])  # moves less like the face
    assert jumpy["beats_x264_at_low_end"] is False


def test_the_command_line_writes_json_and_refuses_bad_arguments(tmp_path, capsys):
    clip = str(DATA / "clips" / "lp_d0.mp4")
    code = main(["codec", "eval", clip, "--frames", "8", "--settings", "0.7:30",
                 "--rates", "40", "--codecs", "x264", "--akd-every", "0", "--json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lp_d0"]["points"][0]["akd"] is None  # not measured: null, not NaN
    assert main(["codec", "eval", str(tmp_path / "nope.mp4")]) == 2
    assert main(["codec", "eval", clip, "--settings", "high"]) == 2
