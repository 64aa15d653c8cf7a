"""``appliance codec eval``: every codec measured the same way, figures that hang together."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from appliance.cli import main
from appliance.codec import evaluate as evaluation
from appliance.codec.evaluate import Point, evaluate, find_clips, markdown, summarize

from .conftest import DATA


def test_eval_measures_our_codec_and_x264_on_a_real_clip(tmp_path):
    clip = DATA / "clips" / "lp_d0.mp4"
    results = evaluate([clip], [(0.8, 40)], [40.0], ["x264"], frames=16,
                       plots=tmp_path, progress=lambda _m: None)  # fmt: skip
    points = results["lp_d0"]["points"]
    assert [p["codec"] for p in points] == ["keypoints", "x264"]
    ours, x264 = points
    assert ours["kbps"] > 0 and x264["kbps"] > 0
    assert 0.8 <= ours["ms_ssim_min"] <= ours["ms_ssim"] <= 1.0  # the floor held
    assert ours["extra"]["keypoint_bytes_per_frame"] < 120
    assert ours["extra"]["references"] >= 1
    assert ours["akd"] < 10 and ours["akd_missed"] == 0  # the tracker finds the face
    # fed every frame, the tracker repeats its cached landmarks exactly: AKD is computed
    tracker = results["lp_d0"]["tracker"]
    assert tracker["frames"] == 16 and tracker["self_akd_px"] < 1e-6 and tracker["akd_computed"]
    summary = results["lp_d0"]["summary"]
    assert summary["metric"] == "face MS-SSIM at native size" and summary["akd_computed"]
    assert summary["x264_floor_kbps"] == x264["kbps"]
    assert (tmp_path / "rd-lp_d0-ms_ssim.png").stat().st_size > 1000
    assert (tmp_path / "rd-lp_d0-akd.png").stat().st_size > 1000


def test_akd_is_not_computed_where_the_tracker_does_not_repeat_itself(monkeypatch):
    # the tracker, run on the original frames, lands 3 px off its own cached landmarks
    def jittery(images, fps):
        clip_landmarks = [cached[int(image[0, 0, 0])] for image in images]
        return np.stack(clip_landmarks) + np.array([3.0, 0.0, 0.0]), None

    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(6)]
    cached = np.random.default_rng(0).uniform(100, 300, (6, 468, 3))
    clip = evaluation.Clip("jitter", 25.0, frames, cached, np.zeros((6, 2, 2)))
    monkeypatch.setattr(evaluation, "track_frames", jittery)
    check = evaluation.check_tracker(clip, evaluation.akd_sample(clip, 2))
    assert check.frames == 3 and check.self_akd_px == pytest.approx(3.0)
    assert check.reason is not None and "self-AKD" in check.reason
    assert check.as_dict()["akd_computed"] is False
    assert evaluation.check_tracker(clip, []).reason is not None  # no sample: nothing known


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


def test_summary_reads_av1_like_x264_and_reports_each_codecs_floor():
    x264 = [point("x264", 10, 0.70, 9.0), point("x264", 40, 0.90, 3.0)]
    av1 = [point("av1", 16, 0.80, 2.6), point("av1", 32, 0.86, 2.2), point("av1", 64, 0.92, 1.5)]
    ours = [point("keypoints", p.kbps / 2, p.ms_ssim, 2.0) for p in av1]
    summary = summarize([*x264, *av1, *ours])
    assert summary["av1_floor_kbps"] == 16 and summary["x264_floor_kbps"] == 10
    assert summary["bd_rate_keypoints_vs_av1_pct"] == pytest.approx(-50.0)  # half the bits
    assert summary["bd_rate_keypoints_vs_x264_pct"] < 0 and "bd_rate_av1_vs_x264_pct" in summary
    # AV1 cannot go down to our 8 kbit/s; its floor costs twice as much for no better face
    assert math.isnan(summary["av1_at_same_kbps"]["ms_ssim"])
    assert summary["av1_points_beaten"] == [""] and summary["beats_av1_at_low_end"] is True
    better_floor = [point("av1", 16, 0.83, 2.6), *av1[1:]]
    summary = summarize([*x264, *better_floor, *ours])
    assert summary["av1_points_beaten"] == [] and summary["beats_av1_at_low_end"] is False
    # without AKD on the clip, the low end is judged on face MS-SSIM alone
    faceless = [*x264, point("keypoints", 8, 0.75, math.nan)]
    no_akd = summarize(faceless, akd_computed=False)
    assert no_akd["akd_computed"] is False and no_akd["beats_x264_at_low_end"] is True
    # with AKD, a NaN of ours is a face the tracker did not find: no win
    assert summarize(faceless)["beats_x264_at_low_end"] is False


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
    assert main(["codec", "eval", clip, "--codecs", "x265"]) == 2
    assert main(["codec", "eval", clip, "--rates", "0"]) == 2
    assert main(["codec", "eval", "--clips", str(tmp_path)]) == 2  # a folder without clips
    assert "x265" in capsys.readouterr().err


def test_rungs_are_the_ladder_its_indices_or_written_out():
    from appliance.codec.hybrid import Rung
    from appliance.codec.ladder import CANDIDATES, TABLE

    assert evaluation._rungs("all") is None  # each clip's own ladder
    assert evaluation._rungs("candidates") == list(CANDIDATES)
    assert evaluation._rungs("none") == []
    assert evaluation._rungs("1,0:60,128:56:15:20") == [
        TABLE[1].rung, Rung(0, 60), Rung(128, 56, fps=15, picture_quality=20)
    ]  # fmt: skip
    for bad in (str(len(TABLE)), "-1", "0:64", "128", "a:b", "128:56:15:20:1", "-1:50"):
        with pytest.raises(ValueError, match="--rungs takes"):
            evaluation._rungs(bad)


def test_clips_are_files_or_folders_of_them(tmp_path):
    test = tmp_path / "clips" / "test"  # a split layout: pass the split's folder
    test.mkdir(parents=True)
    for name in ("b.mp4", "a.mp4", "notes.txt"):
        (test / name).write_bytes(b"")
    other = tmp_path / "c.mp4"
    other.write_bytes(b"")
    assert find_clips([test, other]) == [test / "a.mp4", test / "b.mp4", other]
    with pytest.raises(ValueError, match=r"no \*\.mp4"):
        find_clips([tmp_path / "clips"])  # not recursive: train/ and test/ would mix
    with pytest.raises(ValueError, match="two clips named a"):
        find_clips([test, test / "a.mp4"])
    assert find_clips([]) == sorted((DATA / "clips").glob("*.mp4"))


def test_the_markdown_states_the_metric_and_lists_clips_without_akd():
    points = [point("x264", 10, 0.70, 9.0), point("x264", 40, 0.90, 3.0),
              point("av1", 15, 0.86, 2.5), point("keypoints", 8, 0.82, 2.0)]  # fmt: skip
    tracker = {"self_akd_px": 1.7, "reason": "the tracker's self-AKD ... is 1.70 px"}
    results = {"clip": {"points": [evaluation.asdict(p) for p in points], "tracker": tracker,
                        "summary": summarize(points, akd_computed=False)}}  # fmt: skip
    text = markdown(results)
    assert "face MS-SSIM at native size" in text
    assert "| clip | 1.70 | 15.0 | 8.0, 0.820, – |" in text
    assert "AKD not computed" in text and "clip (the tracker's self-AKD" in text


def test_the_hybrid_is_drawn_as_the_envelope_of_its_rungs():
    rungs = [point("hybrid", 4, 0.80, 5.0), point("hybrid", 9, 0.90, 2.5),
             point("hybrid", 10, 0.86, 3.0), point("hybrid", 20, 0.95, 1.5),
             point("hybrid", 25, 0.94, 1.2)]  # fmt: skip
    assert evaluation.plotted(rungs, "hybrid", "ms_ssim") == ([4, 9, 20], [0.80, 0.90, 0.95])
    assert evaluation.plotted(rungs, "hybrid", "akd") == ([4, 9, 20, 25], [5.0, 2.5, 1.5, 1.2])
    av1 = [point("av1", 10, 0.90, 2.0), point("av1", 20, 0.88, 2.2)]
    assert evaluation.plotted(av1, "av1", "ms_ssim") == ([10, 20], [0.90, 0.88])  # as measured
